"""Writing (atomically) and verifying bundle folders.

A bundle folder holds regular files only: every entry is checked with lstat and opened with
O_NOFOLLOW | O_NONBLOCK, so a symlink (to /dev/zero, or to a file outside the bundle), a FIFO,
a device or a sub-folder is refused at once instead of being followed, blocking or read forever;
each file has a size limit. `load_bundle` reads every file once into memory and verifies the
sha256 of exactly those bytes, so what is loaded (the ONNX session is built from these bytes)
is what was verified, even if the folder changes afterwards.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import stat
import tempfile
from dataclasses import dataclass, replace
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from roadloop_core.bundle.keys import load_private_key, load_public_key
from roadloop_core.bundle.manifest import Manifest
from roadloop_core.errors import BundleError
from roadloop_core.fsio import fsync_dir, fsync_tree

__all__ = [
    "MANIFEST_FILE",
    "MAX_FILE_BYTES",
    "SIGNATURE_FILE",
    "LoadedBundle",
    "load_bundle",
    "read_manifest",
    "sha256_file",
    "verify_bundle",
    "write_bundle",
]

MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
_RESERVED = {MANIFEST_FILE, SIGNATURE_FILE}
MAX_FILE_BYTES = 2 << 30  # an ONNX protobuf cannot be larger
_MAX_MANIFEST_BYTES = 4 << 20
_MAX_SIGNATURE_BYTES = 4096  # an Ed25519 signature is 64 bytes
_MAX_ENTRIES = 256
_KINDS = [
    (stat.S_ISDIR, "a folder"),
    (stat.S_ISLNK, "a symbolic link"),
    (stat.S_ISFIFO, "a FIFO"),
    (stat.S_ISSOCK, "a socket"),
    (stat.S_ISCHR, "a character device"),
    (stat.S_ISBLK, "a block device"),
]


def _kind(mode: int) -> str:
    return next((name for test, name in _KINDS if test(mode)), "not a regular file")


def _read_regular(path: Path, limit: int, sink: hashlib._Hash | None = None) -> bytes:
    """The bytes of regular file `path` (never through a symlink, never blocking); with `sink`, hash instead
    of keeping them (returns b""). BundleError naming the file otherwise."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as err:
        if err.errno == errno.ELOOP:
            raise BundleError(f"{path}: is a symbolic link; bundle files must be regular files") from None
        raise BundleError(f"{path}: cannot open: {err.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise BundleError(f"{path}: is {_kind(st.st_mode)}; bundle files must be regular files")
        if st.st_size > limit:
            raise BundleError(f"{path}: {st.st_size} bytes, more than the {limit} a bundle file may have")
        parts, total = [], 0
        while block := os.read(fd, 1 << 20):
            total += len(block)
            if total > limit:
                raise BundleError(f"{path}: grew past the {limit} bytes a bundle file may have while read")
            if sink is not None:
                sink.update(block)
            else:
                parts.append(block)
        return b"".join(parts)
    except OSError as err:
        raise BundleError(f"{path}: cannot read: {err.strerror}") from None
    finally:
        os.close(fd)


def _entries(bundle_dir: Path) -> set[str]:
    """The names in a bundle folder; anything that is not a regular file is refused (lstat: never followed)."""
    names: set[str] = set()
    try:
        with os.scandir(bundle_dir) as it:
            for entry in it:
                mode = entry.stat(follow_symlinks=False).st_mode
                if not stat.S_ISREG(mode):
                    raise BundleError(
                        f"{bundle_dir / entry.name}: is {_kind(mode)}; bundle files must be regular files"
                    )
                names.add(entry.name)
                if len(names) > _MAX_ENTRIES:
                    raise BundleError(f"{bundle_dir}: more than {_MAX_ENTRIES} entries; not a bundle")
    except OSError as err:
        raise BundleError(f"{bundle_dir}: cannot list: {err.strerror}") from None
    return names


@dataclass(frozen=True)
class LoadedBundle:
    """A verified bundle held in memory: the manifest and the verified bytes of every file."""

    path: Path
    manifest: Manifest
    files: dict[str, bytes]


def sha256_file(path: Path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def write_bundle(
    out_dir: Path,
    *,
    files: dict[str, Path],
    manifest: Manifest,
    signing_key: Ed25519PrivateKey | Path,
) -> Manifest:
    """Copy `files` into a new bundle at `out_dir`, hash them, write and sign the manifest.

    The bundle appears under `out_dir` only when complete (built in a temp folder, then renamed).
    Returns the manifest as written (with `files` and `created` filled in).
    """
    if out_dir.exists():
        raise BundleError(f"{out_dir}: already exists")
    bad = [n for n in files if n in _RESERVED or "/" in n or n.startswith(".") or not n]
    if bad:
        raise BundleError(f"bundle file names not allowed: {', '.join(bad)}")
    key = load_private_key(signing_key) if isinstance(signing_key, Path) else signing_key
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", dir=out_dir.parent))
    try:
        hashes: dict[str, str] = {}
        for name, src in sorted(files.items()):
            try:
                shutil.copyfile(src, tmp / name)
            except OSError as err:
                raise BundleError(f"{src}: cannot copy into bundle: {err.strerror}") from err
            hashes[name] = sha256_file(tmp / name)
        created = manifest.created or datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
        final = replace(manifest, files=hashes, created=created)
        data = final.to_json_bytes()
        (tmp / MANIFEST_FILE).write_bytes(data)
        (tmp / SIGNATURE_FILE).write_bytes(key.sign(data))
        fsync_tree(tmp)  # the copied files too: a bundle that appears is complete on disk
        os.replace(tmp, out_dir)
        fsync_dir(out_dir.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return final


def read_manifest(bundle_dir: Path) -> Manifest:
    """The manifest WITHOUT verification (for display only; never drive on it)."""
    path = bundle_dir / MANIFEST_FILE
    try:
        return Manifest.from_json_bytes(path.read_bytes(), str(path))
    except FileNotFoundError:
        raise BundleError(f"{bundle_dir}: not a bundle (no {MANIFEST_FILE})") from None


def _verified(bundle_dir: Path, public_key: Ed25519PublicKey | Path, keep: bool) -> LoadedBundle:
    key = load_public_key(public_key) if isinstance(public_key, Path) else public_key
    if not bundle_dir.is_dir():
        raise BundleError(f"{bundle_dir}: no such bundle folder")
    present = _entries(bundle_dir)
    if MANIFEST_FILE not in present:
        raise BundleError(f"{bundle_dir}: not a bundle (no {MANIFEST_FILE})")
    if SIGNATURE_FILE not in present:
        raise BundleError(f"{bundle_dir}: unsigned bundle (no {SIGNATURE_FILE})")
    manifest_path, sig_path = bundle_dir / MANIFEST_FILE, bundle_dir / SIGNATURE_FILE
    data = _read_regular(manifest_path, _MAX_MANIFEST_BYTES)
    try:
        key.verify(_read_regular(sig_path, _MAX_SIGNATURE_BYTES), data)
    except InvalidSignature:
        raise BundleError(f"{sig_path}: signature does not match the manifest and the configured public key") from None
    manifest = Manifest.from_json_bytes(data, str(manifest_path))
    present -= _RESERVED
    listed = set(manifest.files)
    if missing := sorted(listed - present):
        raise BundleError(f"{bundle_dir}: files listed in the manifest are missing: {', '.join(missing)}")
    if extra := sorted(present - listed):
        raise BundleError(f"{bundle_dir}: files not listed in the manifest: {', '.join(extra)}")
    files: dict[str, bytes] = {}
    for name, expected in sorted(manifest.files.items()):
        h = hashlib.sha256()
        if keep:
            files[name] = _read_regular(bundle_dir / name, MAX_FILE_BYTES)
            h.update(files[name])
        else:
            _read_regular(bundle_dir / name, MAX_FILE_BYTES, sink=h)
        actual = h.hexdigest()
        if actual != expected:
            raise BundleError(f"{bundle_dir / name}: sha256 {actual[:12]}… != manifest {expected[:12]}…")
    return LoadedBundle(bundle_dir, manifest, files)


def verify_bundle(bundle_dir: Path, public_key: Ed25519PublicKey | Path) -> Manifest:
    """Check signature, file set and every sha256; return the manifest or raise BundleError naming the fault."""
    return _verified(bundle_dir, public_key, keep=False).manifest


def load_bundle(bundle_dir: Path, public_key: Ed25519PublicKey | Path) -> LoadedBundle:
    """`verify_bundle`, keeping the bytes it verified: load the model from `files`, never from the folder again."""
    return _verified(bundle_dir, public_key, keep=True)
