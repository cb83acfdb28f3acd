"""Which files of a recording folder may ship now: pure functions (names, sizes, times, tails in; names out).

rosbag2 records into one folder of split files `<name>_<n>.<ext>` (n = 0, 1, ...; a new one at each
`--max-bag-duration` / `--max-bag-size` split) and writes only to the newest: once split n+1 exists,
split n is finished. What metadata.yaml's presence means depends on the recorder's distro: Humble
writes it only when recording stops; Jazzy and later rewrite it at every split, so there it proves
nothing. A finished mcap file ends with the format's magic (after its footer); one being written
does not, which tells a split in progress apart whatever the distro.

- `closed_splits`: the splits of a recording still in progress that can ship now, one upload each;
- `recording_stopped`: the recorder is done with the folder (the rest ships, and the hub assembles
  the bag from the pieces and metadata.yaml).
"""

from __future__ import annotations

import re
from collections.abc import Collection, Sequence
from dataclasses import dataclass
from pathlib import PurePath

from roadloop_core.bag.storage import ACTIVE_SUFFIX, STORAGE_SUFFIXES
from roadloop_vehicle.bridge.decisions import is_closed

__all__ = [
    "MCAP_MAGIC",
    "METADATA",
    "RECORDING_DISTROS",
    "FolderFile",
    "closed_splits",
    "is_storage",
    "metadata_at_stop_only",
    "recording_stopped",
    "split_index",
]

METADATA = "metadata.yaml"
MCAP_MAGIC = b"\x89MCAP0\r\n"  # the last 8 bytes of every finished mcap file
# The rosbag2 the car records with: Humble writes metadata.yaml only at stop, Jazzy and Kilted at every split.
RECORDING_DISTROS = ("humble", "jazzy", "kilted")
_SPLIT = re.compile(r"_(\d+)\.(?:mcap|db3)(?:" + re.escape(ACTIVE_SUFFIX) + r")?$")


@dataclass(frozen=True)
class FolderFile:
    name: str
    size: int
    mtime_s: float
    complete: bool | None = None  # mcap: ends with MCAP_MAGIC; None: the format cannot tell (sqlite3)


def split_index(name: str) -> int | None:
    """n of a split file `<bag>_<n>.mcap|.db3` (also while our writer holds it as `.active`), else None."""
    m = _SPLIT.search(name)
    return int(m.group(1)) if m else None


def is_storage(name: str) -> bool:
    return PurePath(name).suffix in STORAGE_SUFFIXES


def metadata_at_stop_only(distro: str) -> bool:
    """Humble's rosbag2 writes metadata.yaml once, at stop; later distros rewrite it at every split."""
    return distro == "humble"


def _in_progress(name: str) -> bool:
    return name.endswith(ACTIVE_SUFFIX) or name.startswith(".")


def closed_splits(files: Sequence[FolderFile], now_s: float, settle_s: float) -> list[str]:
    """The finished splits of a recording in progress: every storage split below the newest (the one being
    written), untouched for `settle_s`, and for mcap ending with the magic (its footer is written)."""
    splits = [(n, f) for f in files if (n := split_index(f.name)) is not None]
    if not splits:
        return []
    newest = max(n for n, _ in splits)
    return sorted(
        f.name
        for n, f in splits
        if n < newest
        and is_storage(f.name)
        and not _in_progress(f.name)
        and f.complete is not False
        and now_s - f.mtime_s >= settle_s
    )


def recording_stopped(
    distro: str, files: Sequence[FolderFile], listed: Collection[str] | None, now_s: float, settle_s: float
) -> bool:
    """The recorder is done with this folder.

    Every distro: metadata.yaml written, nothing in progress (`.active`, hidden files), nothing touched
    for `settle_s`. Where metadata.yaml is rewritten at every split (Jazzy and later) its presence proves
    nothing, so also: it names every storage file in the folder (`listed`, its relative_file_paths; None
    when it cannot be read) and every mcap file is finished.
    """
    names = [f.name for f in files]
    newest = max((f.mtime_s for f in files), default=0.0)
    if not is_closed(METADATA in names, any(_in_progress(n) for n in names), newest, now_s, settle_s):
        return False
    if metadata_at_stop_only(distro):
        return True
    storage = {f.name for f in files if is_storage(f.name)}
    if listed is not None and {PurePath(p).name for p in listed} != storage:
        return False
    return all(f.complete is not False for f in files if is_storage(f.name))
