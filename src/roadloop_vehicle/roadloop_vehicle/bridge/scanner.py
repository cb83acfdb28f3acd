"""Finding bags in the recording folder and deciding which are closed (IO around `policy.is_closed`)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from roadloop_core.bag import open_bag
from roadloop_core.bag.storage import ACTIVE_SUFFIX
from roadloop_core.errors import RoadloopError
from roadloop_vehicle.bridge.decisions import bag_tags, is_closed, priority_for

__all__ = ["FoundBag", "bag_size", "scan"]

METADATA = "metadata.yaml"


@dataclass(frozen=True)
class FoundBag:
    name: str
    path: Path
    closed: bool
    size: int
    start_ns: int = 0
    tags: tuple[str, ...] = ()
    priority: int = 0


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


def scan(watch: Path, settle_s: float, now_s: float, priority_tags: dict[str, int]) -> list[FoundBag]:
    """Every bag folder under `watch` (hidden ones are being deleted or staged: skipped)."""
    found: list[FoundBag] = []
    try:
        entries = sorted(os.scandir(watch), key=lambda e: e.name)
    except OSError:
        return found
    for entry in entries:
        if entry.name.startswith(".") or not entry.is_dir(follow_symlinks=False):
            continue
        path = Path(entry.path)
        try:
            files = [e for e in os.scandir(path) if e.is_file(follow_symlinks=False)]
            stats = [f.stat() for f in files]
        except OSError:
            continue
        size = sum(s.st_size for s in stats)
        names = [f.name for f in files]
        in_progress = any(n.endswith(ACTIVE_SUFFIX) or n.startswith(".") for n in names)
        newest = max((s.st_mtime for s in stats), default=0.0)
        closed = is_closed(METADATA in names, in_progress, newest, now_s, settle_s)
        if not closed:
            found.append(FoundBag(entry.name, path, False, size))
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
