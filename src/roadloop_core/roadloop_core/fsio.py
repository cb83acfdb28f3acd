"""Durable file writes: a reader sees the old file or the new one, never half of one, even after a crash.

Every write goes to a temporary name in the same folder, is flushed and fsynced, renamed over the
target (rename is atomic within a file system) and the folder is fsynced so the rename itself
survives a power loss. The temporary name carries the pid, so two writers never share one.

Reading untrusted paths (`read_regular_file`): only regular files are read, with a size bound; a
FIFO is never opened in blocking mode (a read would wait forever for a writer), a folder or a
device is refused with what it is.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_writer",
    "file_kind",
    "fsync_dir",
    "fsync_file",
    "fsync_tree",
    "read_regular_file",
    "replace_symlink",
]


def fsync_dir(path: Path) -> None:
    """fsync a folder, so the names created, renamed or removed in it are durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_tree(root: Path) -> None:
    """fsync every file and folder under `root` (deepest first), then `root` itself."""
    for dirpath, _dirs, files in os.walk(root, topdown=False):
        for name in files:
            fsync_file(Path(dirpath, name))
        fsync_dir(Path(dirpath))


def _tmp_name(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp{os.getpid()}")


def atomic_writer(path: Path, write: Callable[[IO[bytes]], Any], *, mode: int = 0o644) -> None:
    """Call `write(f)` on a temporary file, then fsync it, rename it to `path` and fsync the folder.

    `mode` is set when the temporary file is created (0o600 for secrets: never readable by others,
    not even for a moment). On any error the temporary file is removed and `path` is untouched.
    """
    path = Path(path)
    tmp = _tmp_name(path)
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, mode)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes | bytearray | memoryview, *, mode: int = 0o644) -> None:
    atomic_writer(path, lambda f: f.write(data), mode=mode)


def atomic_write_text(path: Path, text: str, *, mode: int = 0o644) -> None:
    atomic_write_bytes(path, text.encode("utf-8"), mode=mode)


def atomic_write_json(
    path: Path,
    data: Any,
    *,
    indent: int | None = 2,
    sort_keys: bool = False,
    default: Callable[[Any], Any] | None = None,
) -> None:
    """`data` as JSON (with a final newline), written atomically."""
    text = json.dumps(data, indent=indent, sort_keys=sort_keys, default=default) + "\n"
    atomic_write_text(path, text)


def replace_symlink(link: Path, target: Path | str, *, target_is_directory: bool = True) -> None:
    """Point `link` at `target` atomically (new symlink + rename): a reader sees the old or the new target."""
    link = Path(link)
    tmp = _tmp_name(link)
    tmp.unlink(missing_ok=True)
    tmp.symlink_to(target, target_is_directory=target_is_directory)
    os.replace(tmp, link)
    fsync_dir(link.parent)


def file_kind(mode: int) -> str:
    """What an `st_mode` is, in words ("a folder", "a FIFO (named pipe)", ...)."""
    if stat.S_ISREG(mode):
        return "a regular file"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_regular_file(path: Path, max_bytes: int | None = None) -> bytes:
    """The bytes of the regular file `path` (symlinks followed); OSError with a readable `strerror` otherwise.

    Opened non-blocking and checked with fstat before any read, so a FIFO, a device or a folder at
    `path` is refused at once (`strerror` says what it is) instead of blocking or reading forever;
    a file larger than `max_bytes` is refused before it is read.
    """
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, f"{file_kind(st.st_mode)}, not a regular file", str(path))
        if max_bytes is not None and st.st_size > max_bytes:
            raise OSError(errno.EFBIG, f"{st.st_size} bytes, more than the {max_bytes} allowed", str(path))
        limit = st.st_size if max_bytes is None else max_bytes
        chunks, total = [], 0
        while True:  # read to the real end: the size in stat can be stale while a file grows
            block = os.read(fd, 1 << 20)
            if not block:
                break
            chunks.append(block)
            total += len(block)
            if max_bytes is not None and total > limit:
                raise OSError(errno.EFBIG, f"more than the {max_bytes} bytes allowed", str(path))
        return b"".join(chunks)
    finally:
        os.close(fd)
