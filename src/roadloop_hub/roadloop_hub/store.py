"""The hub's content-addressed store on disk.

    ROOT/uploads/<upload_id>/<idx>          a held chunk: immutable, renamed into place after its sha256 matched
    ROOT/uploads/<upload_id>/.<idx>.*.part  a chunk body arriving (never read as a chunk)
    ROOT/bags/<sha256>/                     a bag as a plain rosbag2 folder, named by the sha256 of its tar stream
    ROOT/bundles/<sha256>/                  a verified model bundle, named by the sha256 of its manifest.json
    ROOT/tmp/                               half-built objects; renamed into place only when complete

A chunk body never lands where a held chunk is: it is written to its own temp file and renamed
into place only once its sha256 matched and no chunk is held at that index (`ChunkFile`), so the
bytes of a held chunk are the bytes its checksum was computed over, until the upload completes or
is reset. Objects appear under `bags/` and `bundles/` only by rename of a finished, verified,
fsynced folder, so a reader (or `roadloop data build`) never sees a partial one, and a stored bag
folder re-tarred (`wire.TarStream`) gives exactly the bytes whose sha256 names it.
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
import tempfile
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

from roadloop_core.contract.wire import TarMember, chunk_count, chunk_range, tar_members
from roadloop_core.fsio import fsync_dir, fsync_file
from roadloop_hub.errors import StoreError

__all__ = ["BlobStore", "ChunkFile", "HeldObject"]

_PART = ".part"


class ChunkFile:
    """One chunk body arriving: written to a temp file, put in place only by `install` (else discarded)."""

    def __init__(self, tmp: Path, final: Path) -> None:
        self.tmp, self.final = tmp, final
        self._fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o640)
        self.installed = False

    def write(self, data: bytes) -> None:
        view = memoryview(data)
        while view:
            view = view[os.write(self._fd, view) :]

    def install(self) -> None:
        """Rename the body into place as the held chunk (the caller checked that none is held there).

        Not fsynced: a held chunk survives a hub process crash (page cache); after a power loss a
        chunk the catalog lists may be short or gone, which `complete` finds (size check, then the
        whole-object sha256) before anything is acknowledged.
        """
        self._close()
        os.replace(self.tmp, self.final)
        self.installed = True

    def discard(self) -> None:
        self._close()
        if not self.installed:
            self.tmp.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> ChunkFile:
        return self

    def __exit__(self, *_: object) -> None:
        self.discard()


class HeldObject:
    """An upload's held chunks read as the one object they make up (offsets in the whole stream)."""

    def __init__(self, folder: Path, size: int, chunk_size: int) -> None:
        self.folder, self.size, self.chunk_size = folder, size, chunk_size
        self.n_chunks = chunk_count(size, chunk_size)

    def chunk_path(self, idx: int) -> Path:
        return self.folder / str(idx)

    def missing(self, held: list[int]) -> list[int]:
        """Held chunks (per the catalog) whose file is absent or has the wrong size (e.g. after a power loss)."""
        out = []
        for idx in held:
            try:
                ok = self.chunk_path(idx).stat().st_size == chunk_range(idx, self.size, self.chunk_size)[1]
            except FileNotFoundError:
                ok = False
            if not ok:
                out.append(idx)
        return out

    def _pieces(self, offset: int, length: int) -> list[tuple[int, int, int]]:
        """(chunk index, offset in that chunk, length) covering [offset, offset+length)."""
        out = []
        end = min(offset + length, self.size)
        while offset < end:
            idx = offset // self.chunk_size
            inner = offset - idx * self.chunk_size
            n = min(end - offset, self.chunk_size - inner)
            out.append((idx, inner, n))
            offset += n
        return out

    def _each(self, offset: int, length: int, use: Callable[[int, int, int], None]) -> None:
        for idx, inner, n in self._pieces(offset, length):
            fd = os.open(self.chunk_path(idx), os.O_RDONLY | os.O_CLOEXEC)
            try:
                use(fd, inner, n)
            finally:
                os.close(fd)

    def read(self, offset: int, length: int) -> bytes:
        parts: list[bytes] = []

        def take(fd: int, inner: int, n: int) -> None:
            got = os.pread(fd, n, inner)
            if len(got) != n:
                raise StoreError(f"{self.folder}: a held chunk is shorter than it was")
            parts.append(got)

        self._each(offset, length, take)
        return parts[0] if len(parts) == 1 else b"".join(parts)

    def read_chunk(self, idx: int) -> bytes:
        off, n = chunk_range(idx, self.size, self.chunk_size)
        return self.read(off, n)

    def sha256(self, start: int = 0, h: Any = None) -> str:
        """sha256 of the object as stored, continuing `h` (which already covers bytes [0, start))."""
        h = h if h is not None else hashlib.sha256()
        pos = start
        while pos < self.size:
            n = min(8 << 20, self.size - pos)
            h.update(self.read(pos, n))
            pos += n
        return str(h.hexdigest())

    def copy_to(self, out_fd: int, offset: int, length: int) -> None:
        def copy(fd: int, inner: int, n: int) -> None:
            while n:
                done = os.copy_file_range(fd, out_fd, n, inner)
                if done == 0:
                    raise StoreError(f"{self.folder}: a held chunk is shorter than it was")
                inner, n = inner + done, n - done

        self._each(offset, length, copy)


class _FileObject:
    """A single file (a spooled request body) with HeldObject's read/copy_to."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.size = path.stat().st_size

    def read(self, offset: int, length: int) -> bytes:
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def copy_to(self, out_fd: int, offset: int, length: int) -> None:
        fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC)
        try:
            while length:
                done = os.copy_file_range(fd, out_fd, length, offset)
                if done == 0:
                    raise StoreError(f"{self.path}: shorter than its tar headers say")
                offset, length = offset + done, length - done
        finally:
            os.close(fd)


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.uploads = root / "uploads"
        self.bags = root / "bags"
        self.bundles = root / "bundles"
        self.tmp = root / "tmp"
        for d in (self.uploads, self.bags, self.bundles, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    def drop_leftovers(self, cutoff: float) -> int:
        """Chunk bodies and half-built objects older than `cutoff` (UNIX s): left by a crash, unreferenced.

        Only by age: another process (a serving hub) may be writing the newer ones right now.
        """
        dropped = 0
        # (`uploads/*.part`: whole-upload part files of hubs before held chunks became files of their own)
        leftovers = [*self.uploads.glob(f"*/.*{_PART}"), *self.uploads.glob(f"*{_PART}"), *self.tmp.iterdir()]
        for entry in leftovers:
            try:
                if entry.lstat().st_mtime >= cutoff:
                    continue
            except FileNotFoundError:
                continue
            if entry.is_dir() and not entry.is_symlink():
                shutil.rmtree(entry, ignore_errors=True)
            else:
                entry.unlink(missing_ok=True)
            dropped += 1
        return dropped

    # -- uploads in progress -------------------------------------------------------------------
    def upload_dir(self, upload_id: str) -> Path:
        return self.uploads / upload_id

    def held(self, upload_id: str, size: int, chunk_size: int) -> HeldObject:
        return HeldObject(self.upload_dir(upload_id), size, chunk_size)

    def new_chunk(self, upload_id: str, idx: int) -> ChunkFile:
        """A temp file for chunk `idx`'s body, next to where the held chunk goes (see ChunkFile.install)."""
        folder = self.upload_dir(upload_id)
        folder.mkdir(exist_ok=True)
        return ChunkFile(folder / f".{idx}.{uuid.uuid4().hex}{_PART}", folder / str(idx))

    def drop_upload(self, upload_id: str) -> None:
        shutil.rmtree(self.upload_dir(upload_id), ignore_errors=True)

    def upload_dirs(self) -> list[str]:
        return [p.name for p in self.uploads.iterdir() if p.is_dir()]

    # -- bags ------------------------------------------------------------------------------------
    def bag_dir(self, sha256: str) -> Path:
        return self.bags / sha256

    def has_bag(self, sha256: str) -> bool:
        return self.bag_dir(sha256).is_dir()

    def unpack_upload(self, obj: HeldObject, sha256: str, what: str) -> tuple[Path, list[TarMember]]:
        """Unpack a verified upload into a new folder under tmp/ (not yet visible); StoreError if it is not
        the wire's tar. The caller installs it (`install_bag`) or deletes it."""
        work = Path(tempfile.mkdtemp(prefix=f"{sha256[:16]}.", dir=self.tmp))
        try:
            members = self._unpack(obj, work, what)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return work, members

    @staticmethod
    def discard(work: Path) -> None:
        shutil.rmtree(work, ignore_errors=True)

    def install_bag(self, work: Path, sha256: str) -> Path:
        """Rename an unpacked, checked folder into bags/<sha256>/ (if another upload of the same content
        won the race, its folder stays and `work` is dropped: the bytes are the same)."""
        target = self.bag_dir(sha256)
        try:
            os.rename(work, target)
        except OSError:
            shutil.rmtree(work, ignore_errors=True)
            if not target.is_dir():
                raise
        fsync_dir(self.bags)
        return target

    def link_pieces(self, pieces: dict[str, str]) -> Path:
        """A new folder under tmp/ holding each piece's one file (name -> the sha256 of the stored piece), hard
        linked from the stored pieces (a copy where the file system has no hard links): no byte is rewritten.
        Stored objects never change, so sharing their inodes is safe. The caller installs or discards it."""
        work = Path(tempfile.mkdtemp(prefix="recording.", dir=self.tmp))
        try:
            for name, sha256 in pieces.items():
                source = self.bag_dir(sha256) / name
                try:
                    os.link(source, work / name)
                except OSError as err:
                    if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK, errno.ENOTSUP):
                        raise
                    shutil.copyfile(source, work / name)
                    fsync_file(work / name)
            fsync_dir(work)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        return work

    def read_bag(self, sha256: str) -> Callable[[int, int], bytes]:
        """Any byte range of a stored bag's tar stream, rebuilt from its folder (the wire format is exact)."""
        from roadloop_core.contract.wire import TarStream

        return TarStream(self.bag_dir(sha256)).read

    @staticmethod
    def _unpack(obj: HeldObject | _FileObject, out: Path, what: str) -> list[TarMember]:
        try:
            members = tar_members(obj.read, obj.size)
        except ValueError as err:
            raise StoreError(f"{what}: not the wire format's tar stream: {err}") from None
        for m in members:
            fd = os.open(out / m.name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
            try:
                obj.copy_to(fd, m.offset, m.size)
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(out)
        return members

    # -- bundles ---------------------------------------------------------------------------------
    def bundle_dir(self, bundle_id: str) -> Path:
        return self.bundles / bundle_id

    def staging_dir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="bundle.", dir=self.tmp))

    def unpack_bundle(self, tar_path: Path, out: Path) -> None:
        self._unpack(_FileObject(tar_path), out, what="bundle")

    def commit_bundle(self, staged: Path, bundle_id: str) -> Path:
        target = self.bundle_dir(bundle_id)
        if target.is_dir():
            shutil.rmtree(staged, ignore_errors=True)
            return target
        fsync_dir(staged)
        os.rename(staged, target)
        fsync_dir(self.bundles)
        return target
