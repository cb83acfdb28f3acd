"""Finding bags in the recording folder and deciding what can ship (IO around `pieces` and `decisions`)."""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from roadloop_core.bag import open_bag
from roadloop_core.bag.metadata import read_metadata
from roadloop_core.errors import RoadloopError
from roadloop_vehicle.bridge.decisions import bag_tags, priority_for
from roadloop_vehicle.bridge.pieces import (
    MCAP_MAGIC,
    METADATA,
    FolderFile,
    closed_splits,
    metadata_at_stop_only,
    recording_stopped,
)

__all__ = ["METADATA", "FoundBag", "bag_size", "scan"]


@dataclass(frozen=True)
class FoundBag:
    name: str
    path: Path
    closed: bool
    size: int
    start_ns: int = 0
    tags: tuple[str, ...] = ()
    priority: int = 0
    pieces: tuple[str, ...] = ()  # not closed: the finished split files that can ship already


def bag_size(path: Path) -> int:
    try:
        return sum(e.stat().st_size for e in os.scandir(path) if e.is_file(follow_symlinks=False))
    except OSError:
        return 0


def _tag_lines(watch: Path, name: str) -> list[str]:
    try:
        return (watch / f"{name}.tags").read_text(encoding="utf-8").splitlines()
    except OSError:
        return []


def _mcap_finished(path: Path, size: int) -> bool:
    """The file ends with the mcap magic: its writer wrote the footer (a split being written does not)."""
    if size < len(MCAP_MAGIC):
        return False
    try:
        with open(path, "rb") as f:
            f.seek(size - len(MCAP_MAGIC))
            return f.read(len(MCAP_MAGIC)) == MCAP_MAGIC
    except OSError:
        return False


def _folder_files(path: Path) -> list[FolderFile] | None:
    try:
        entries = [e for e in os.scandir(path) if e.is_file(follow_symlinks=False)]
        stats = [e.stat() for e in entries]
    except OSError:
        return None
    out = []
    for e, s in zip(entries, stats, strict=True):
        finished = _mcap_finished(Path(e.path), s.st_size) if e.name.endswith(".mcap") else None
        out.append(FolderFile(e.name, s.st_size, s.st_mtime, finished))
    return out


def _listed(path: Path, files: Sequence[FolderFile], distro: str) -> list[str] | None:
    """metadata.yaml's relative_file_paths where that decides anything (None: absent or unreadable)."""
    if metadata_at_stop_only(distro) or METADATA not in {f.name for f in files}:
        return None
    try:
        return read_metadata(path).relative_file_paths
    except RoadloopError:
        return None


def scan(
    watch: Path, settle_s: float, now_s: float, priority_tags: dict[str, int], *, distro: str, splits: bool
) -> list[FoundBag]:
    """Every bag folder under `watch` (hidden ones are being deleted or staged: skipped).

    `distro`: the rosbag2 the car records with (what metadata.yaml's presence means); `splits`: list the
    finished split files of recordings still in progress (they ship one by one)."""
    found: list[FoundBag] = []
    try:
        entries = sorted(os.scandir(watch), key=lambda e: e.name)
    except OSError:
        return found
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        files = _folder_files(path)
        if files is None:
            continue
        size = sum(f.size for f in files)
        newest = max((f.mtime_s for f in files), default=0.0)
        if not recording_stopped(distro, files, _listed(path, files, distro), now_s, settle_s):
            ready = tuple(closed_splits(files, now_s, settle_s)) if splits else ()
            tags = bag_tags({}, _tag_lines(watch, entry.name)) if ready else []
            oldest = int(min((f.mtime_s for f in files), default=0.0) * 1e9)
            prio = priority_for(tags, priority_tags)
            found.append(FoundBag(entry.name, path, False, size, oldest, tuple(tags), prio, ready))
            continue
        try:
            with open_bag(path) as bag:
                info = bag.info
            start_ns, custom = info.start_ns, info.custom_data
        except RoadloopError:  # still shipped: the hub keeps unreadable bags and says why
            start_ns, custom = int(newest * 1e9), {}
        tags = bag_tags(custom, _tag_lines(watch, entry.name))
        found.append(FoundBag(entry.name, path, True, size, start_ns, tuple(tags), priority_for(tags, priority_tags)))
    return found
