"""Writing (atomically) and verifying bundle folders."""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from roadloop_core.bundle.keys import load_private_key, load_public_key
from roadloop_core.bundle.manifest import Manifest
from roadloop_core.errors import BundleError
from roadloop_core.fsio import fsync_dir, fsync_tree

__all__ = ["MANIFEST_FILE", "SIGNATURE_FILE", "read_manifest", "sha256_file", "verify_bundle", "write_bundle"]

MANIFEST_FILE = "manifest.json"
SIGNATURE_FILE = "manifest.sig"
_RESERVED = {MANIFEST_FILE, SIGNATURE_FILE}


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


def verify_bundle(bundle_dir: Path, public_key: Ed25519PublicKey | Path) -> Manifest:
    """Check signature, file set and every sha256; return the manifest or raise BundleError naming the fault."""
    key = load_public_key(public_key) if isinstance(public_key, Path) else public_key
    if not bundle_dir.is_dir():
        raise BundleError(f"{bundle_dir}: no such bundle folder")
    manifest_path, sig_path = bundle_dir / MANIFEST_FILE, bundle_dir / SIGNATURE_FILE
    if not manifest_path.is_file():
        raise BundleError(f"{bundle_dir}: not a bundle (no {MANIFEST_FILE})")
    if not sig_path.is_file():
        raise BundleError(f"{bundle_dir}: unsigned bundle (no {SIGNATURE_FILE})")
    data = manifest_path.read_bytes()
    try:
        key.verify(sig_path.read_bytes(), data)
    except InvalidSignature:
        raise BundleError(f"{sig_path}: signature does not match the manifest and the configured public key") from None
    manifest = Manifest.from_json_bytes(data, str(manifest_path))
    present = {p.name for p in bundle_dir.iterdir()} - _RESERVED
    listed = set(manifest.files)
    if missing := sorted(listed - present):
        raise BundleError(f"{bundle_dir}: files listed in the manifest are missing: {', '.join(missing)}")
    if extra := sorted(present - listed):
        raise BundleError(f"{bundle_dir}: files not listed in the manifest: {', '.join(extra)}")
    for name, expected in sorted(manifest.files.items()):
        actual = sha256_file(bundle_dir / name)
        if actual != expected:
            raise BundleError(f"{bundle_dir / name}: sha256 {actual[:12]}… != manifest {expected[:12]}…")
    return manifest
