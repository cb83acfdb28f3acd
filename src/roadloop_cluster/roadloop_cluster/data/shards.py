"""Shard files: uncompressed .npz written byte-for-byte reproducibly, read back as memory maps.

`np.savez` stamps each zip member with the current time, so two builds would differ;
`write_npz` writes the same layout (stored members `<name>.npy`) with a fixed
timestamp, so `np.load` reads it and identical arrays give identical bytes.
`open_npz_mmap` maps each member's array in place (members are stored, not
compressed), so loaders touch only the rows they read.
"""

from __future__ import annotations

import hashlib
import os
import struct
import zipfile
from pathlib import Path

import numpy as np

from roadloop_cluster.data.errors import DataError
from roadloop_core.contract.dataset_index import Shard

__all__ = ["ShardWriter", "file_sha256", "open_npz_mmap", "write_npz", "write_npz_parts"]

_EPOCH = (1980, 1, 1, 0, 0, 0)
_ROWS_PER_WRITE = 256


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 20):
            h.update(chunk)
    return h.hexdigest()


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    """Write `arrays` (in the given order) as an uncompressed .npz at `path`, fsynced."""
    write_npz_parts(path, {name: [arr] for name, arr in arrays.items()})


def write_npz_parts(path: Path, parts: dict[str, list[np.ndarray]]) -> None:
    """Like `write_npz` for arrays given as row blocks (e.g. memory-mapped spool slices): each member is
    streamed block by block, never concatenated in memory. Same bytes as `write_npz` of the whole arrays."""
    with open(path, "wb") as raw:
        with zipfile.ZipFile(raw, mode="w", compression=zipfile.ZIP_STORED, allowZip64=True) as zf:
            for name, blocks in parts.items():
                first = blocks[0]
                rows = sum(len(b) for b in blocks)
                header = {
                    "descr": np.lib.format.dtype_to_descr(first.dtype),
                    "fortran_order": False,
                    "shape": (rows, *first.shape[1:]),
                }
                info = zipfile.ZipInfo(f"{name}.npy", date_time=_EPOCH)
                info.compress_type = zipfile.ZIP_STORED
                info.external_attr = 0o644 << 16
                with zf.open(info, "w", force_zip64=True) as f:
                    np.lib.format.write_array_header_1_0(f, header)
                    for block in blocks:
                        if block.dtype != first.dtype or block.shape[1:] != first.shape[1:]:
                            raise DataError(f"{path}: blocks of '{name}' differ in dtype or shape")
                        for lo in range(0, len(block), _ROWS_PER_WRITE):
                            f.write(np.ascontiguousarray(block[lo : lo + _ROWS_PER_WRITE]).data.cast("B"))
        raw.flush()
        os.fsync(raw.fileno())


def open_npz_mmap(path: Path) -> dict[str, np.ndarray]:
    """Read-only memory maps of every array of an uncompressed .npz (one written by `write_npz` or np.savez)."""
    out: dict[str, np.ndarray] = {}
    try:
        with zipfile.ZipFile(path) as zf, open(path, "rb") as f:
            for info in zf.infolist():
                if info.compress_type != zipfile.ZIP_STORED:
                    raise DataError(f"{path}: member {info.filename} is compressed; shards must be stored")
                f.seek(info.header_offset)
                local = f.read(30)
                if local[:4] != b"PK\x03\x04":
                    raise DataError(f"{path}: bad local header for {info.filename}")
                name_len, extra_len = struct.unpack("<HH", local[26:30])
                f.seek(info.header_offset + 30 + name_len + extra_len)
                version = np.lib.format.read_magic(f)
                if version == (1, 0):
                    shape, fortran, dtype = np.lib.format.read_array_header_1_0(f)
                else:
                    shape, fortran, dtype = np.lib.format.read_array_header_2_0(f)
                if fortran or dtype.hasobject:
                    raise DataError(f"{path}: member {info.filename} is not a plain C-ordered array")
                offset = f.tell()
                name = info.filename.removesuffix(".npy")
                if int(np.prod(shape)) == 0:
                    out[name] = np.zeros(shape, dtype=dtype)
                else:
                    out[name] = np.memmap(path, dtype=dtype, mode="r", offset=offset, shape=tuple(shape))
    except (OSError, zipfile.BadZipFile, ValueError, struct.error) as err:
        raise DataError(f"{path}: unreadable shard: {err}") from err
    return out


class ShardWriter:
    """Cuts a stream of sample blocks into fixed-size shards `<split>-NNNNN.npz` under `shards_dir`.

    Blocks are kept as given (memory-mapped spool slices stay on disk) and streamed into the
    shard file when it is full, so memory does not grow with the shard size or the input.
    """

    def __init__(self, shards_dir: Path, split: str, shard_size: int, names: tuple[str, ...]) -> None:
        self.dir = shards_dir
        self.split = split
        self.size = shard_size
        self.names = names
        self.shards: list[Shard] = []
        self._parts: dict[str, list[np.ndarray]] = {n: [] for n in names}
        self._buffered = 0

    def add(self, arrays: dict[str, np.ndarray]) -> None:
        """Append a block; shards are written as soon as `shard_size` samples are collected."""
        n = len(arrays[self.names[0]])
        start = 0
        while start < n:
            take = min(self.size - self._buffered, n - start)
            for name in self.names:
                self._parts[name].append(arrays[name][start : start + take])
            self._buffered += take
            start += take
            if self._buffered == self.size:
                self._flush()

    def close(self) -> list[Shard]:
        if self._buffered:
            self._flush()
        return self.shards

    def _flush(self) -> None:
        file = f"{self.split}-{len(self.shards):05d}.npz"
        path = self.dir / file
        write_npz_parts(path, self._parts)
        self.shards.append(Shard(f"shards/{file}", self._buffered, file_sha256(path)))
        self._parts = {n: [] for n in self.names}
        self._buffered = 0
