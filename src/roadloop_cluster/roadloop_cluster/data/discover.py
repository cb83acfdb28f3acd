"""Finding rosbag2 bags under the paths a user names, and fingerprinting them.

A bag is a folder holding `metadata.yaml` or storage files (`*.mcap`, `*.db3`);
anything else is searched recursively, so a recording folder, a folder of bag
folders, a hub's content-addressed store (`ROOT/bags/<sha256>/`) and the symlink
folder `roadloop hub export-bags` fills all work.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

from roadloop_cluster.data.errors import DataError

__all__ = ["bag_sha256", "find_bags", "is_bag_dir"]

_STORAGE_SUFFIXES = (".mcap", ".db3")


def is_bag_dir(path: Path) -> bool:
    if not path.is_dir():
        return False
    if (path / "metadata.yaml").is_file():
        return True
    return any(p.suffix in _STORAGE_SUFFIXES and p.is_file() for p in path.iterdir())


def find_bags(paths: list[Path]) -> list[Path]:
    """Every bag folder at or under `paths` (absolute, sorted, unique; symlinked bag folders included, as
    `roadloop hub export-bags` makes them); a missing path is a DataError."""
    found: set[Path] = set()
    for root in paths:
        if not root.exists():
            raise DataError(f"{root}: no such file or directory")
        if root.is_file():
            if root.suffix in _STORAGE_SUFFIXES or root.name == "metadata.yaml":
                found.add(root.parent.absolute())
                continue
            raise DataError(f"{root}: not a bag folder or a folder of bags")
        for dirpath, dirnames, _ in os.walk(root, followlinks=False):
            d = Path(dirpath)
            if is_bag_dir(d):
                found.add(d.absolute())
                dirnames.clear()  # a bag's own folder holds no further bags
                continue
            dirnames.sort()
            for name in list(dirnames):  # symlinked bags (`roadloop hub export-bags`) count; links are not walked
                link = d / name
                if link.is_symlink():
                    dirnames.remove(name)
                    if is_bag_dir(link):
                        found.add(link.absolute())
    return sorted(found)


def bag_sha256(bag: Path) -> str:
    """Content hash of a bag folder: every file's relative name, size and bytes, in name order."""
    h = hashlib.sha256()
    for p in sorted(q for q in bag.rglob("*") if q.is_file()):
        rel = p.relative_to(bag).as_posix().encode()
        h.update(rel + b"\0" + str(p.stat().st_size).encode() + b"\0")
        with open(p, "rb") as f:
            while chunk := f.read(1 << 20):
                h.update(chunk)
    return h.hexdigest()
