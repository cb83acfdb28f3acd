"""Durable file writes: a reader sees the old file or the new one, never half of one, even after a crash.

Every write goes to a temporary name in the same folder, is flushed and fsynced, renamed over the
target (rename is atomic within a file system) and the folder is fsynced so the rename itself
survives a power loss. The temporary name carries the pid, so two writers never share one.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

__all__ = [
    "atomic_write_bytes",
    "atomic_write_json",
    "atomic_write_text",
    "atomic_writer",
    "fsync_dir",
    "fsync_file",
    "fsync_tree",
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
