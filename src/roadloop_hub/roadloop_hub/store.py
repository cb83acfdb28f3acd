"""The hub's content-addressed store on disk.

    ROOT/uploads/<upload_id>.part   chunks written in place at their offsets
    ROOT/bags/<sha256>/             a bag as a plain rosbag2 folder, named by the sha256 of its tar stream
    ROOT/bundles/<sha256>/          a verified model bundle, named by the sha256 of its manifest.json
    ROOT/tmp/                       half-built objects; renamed into place only when complete

Objects appear under `bags/` and `bundles/` only by rename of a finished, fsynced
folder, so a reader (or `roadloop data build`) never sees a partial one.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from roadloop_core.contract.wire import check_name
from roadloop_core.fsio import fsync_dir
from roadloop_hub.errors import StoreError

__all__ = ["BlobStore", "PartFile"]


class PartFile:
    """An upload's part file open for writing chunks at their offsets (several chunks may write at once)."""

    def __init__(self, path: Path) -> None:
        self._fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o640)

    def write_at(self, offset: int, data: bytes) -> None:
        view = memoryview(data)
        while view:
            n = os.pwrite(self._fd, view, offset)
            view, offset = view[n:], offset + n

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def __enter__(self) -> PartFile:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root.resolve()
        self.uploads = root / "uploads"
        self.bags = root / "bags"
        self.bundles = root / "bundles"
        self.tmp = root / "tmp"
        for d in (self.uploads, self.bags, self.bundles, self.tmp):
            d.mkdir(parents=True, exist_ok=True)

    # -- uploads in progress -------------------------------------------------------------------
    def part_path(self, upload_id: str) -> Path:
        return self.uploads / f"{upload_id}.part"

    def open_part(self, upload_id: str) -> PartFile:
        """The part file to write chunks into, at their offsets (chunks of one upload may arrive concurrently).

        Not fsynced: a held chunk survives a hub process crash (page cache); after a power loss a
        chunk the catalog lists may be gone, which the whole-object sha256 at `complete` catches
        (the upload restarts). What `complete` acknowledges, the unpacked bag, is fsynced.
        """
        return PartFile(self.part_path(upload_id))

    def write_chunk(self, upload_id: str, offset: int, data: bytes) -> None:
        """Write one whole chunk at its offset (see `open_part`)."""
        with self.open_part(upload_id) as part:
            part.write_at(offset, data)

    def read_part(self, upload_id: str, offset: int, length: int) -> bytes:
        fd = os.open(self.part_path(upload_id), os.O_RDONLY)
        try:
            return os.pread(fd, length, offset)
        finally:
            os.close(fd)

    def hash_part(self, upload_id: str, size: int, start: int = 0, h: Any = None) -> str:
        """sha256 of the part file, continuing `h` (which already covers bytes [0, start))."""
        h = h if h is not None else hashlib.sha256()
        with open(self.part_path(upload_id), "rb") as f:
            f.seek(start)
            remaining = size - start
            while remaining:
                block = f.read(min(8 << 20, remaining))
                if not block:
                    break
                h.update(block)
                remaining -= len(block)
        return str(h.hexdigest())

    def drop_part(self, upload_id: str) -> None:
        self.part_path(upload_id).unlink(missing_ok=True)

    # -- bags ------------------------------------------------------------------------------------
    def bag_dir(self, sha256: str) -> Path:
        return self.bags / sha256

    def has_bag(self, sha256: str) -> bool:
        return self.bag_dir(sha256).is_dir()

    def ingest_bag(self, upload_id: str, sha256: str) -> Path:
        """Unpack a verified upload's tar into bags/<sha256>/ (flat, regular files only), then drop the part."""
        target = self.bag_dir(sha256)
        if target.is_dir():
            self.drop_part(upload_id)
            return target
        work = Path(tempfile.mkdtemp(prefix=f"{sha256[:16]}.", dir=self.tmp))
        try:
            self._unpack(self.part_path(upload_id), work, what=f"upload {upload_id}")
            fsync_dir(work)
            try:
                os.rename(work, target)
            except OSError:
                if not target.is_dir():  # not "another upload of the same content won the race"
                    raise
                shutil.rmtree(work, ignore_errors=True)
            fsync_dir(self.bags)
        except BaseException:
            shutil.rmtree(work, ignore_errors=True)
            raise
        self.drop_part(upload_id)
        return target

    @staticmethod
    def _unpack(tar_path: Path, out: Path, what: str) -> None:
        try:
            with tarfile.open(tar_path, "r:") as tar, open(tar_path, "rb") as src:
                for member in tar:
                    try:
                        check_name(member.name, "tar member")
                    except ValueError as err:
                        raise StoreError(f"{what}: {err}") from None
                    if not member.isreg():
                        raise StoreError(f"{what}: tar member {member.name!r} is not a regular file")
                    dest = out / member.name
                    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
                    try:
                        offset, left = member.offset_data, member.size
                        while left:
                            n = os.copy_file_range(src.fileno(), fd, left, offset)
                            if n == 0:
                                raise StoreError(f"{what}: tar member {member.name!r} is truncated")
                            offset, left = offset + n, left - n
                        os.fsync(fd)
                    finally:
                        os.close(fd)
        except tarfile.TarError as err:
            raise StoreError(f"{what}: not a tar stream ({err})") from err

    # -- bundles ---------------------------------------------------------------------------------
    def bundle_dir(self, bundle_id: str) -> Path:
        return self.bundles / bundle_id

    def staging_dir(self) -> Path:
        return Path(tempfile.mkdtemp(prefix="bundle.", dir=self.tmp))

    def unpack_bundle(self, tar_path: Path, out: Path) -> None:
        self._unpack(tar_path, out, what="bundle")

    def commit_bundle(self, staged: Path, bundle_id: str) -> Path:
        target = self.bundle_dir(bundle_id)
        if target.is_dir():
            shutil.rmtree(staged, ignore_errors=True)
            return target
        fsync_dir(staged)
        os.rename(staged, target)
        fsync_dir(self.bundles)
        return target
