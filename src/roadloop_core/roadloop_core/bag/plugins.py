"""The storage plugins by file suffix: which backend opens a storage file.

Kept apart from `storage` (the Protocol every backend implements), so the backends import the
Protocol and this module imports the backends, and no import runs in a circle.
"""

from __future__ import annotations

from pathlib import Path

from roadloop_core.bag.storage import STORAGE_SUFFIXES, StorageReader, storage_id_for
from roadloop_core.bag.storage_mcap import McapStorage
from roadloop_core.bag.storage_sqlite3 import Sqlite3Storage
from roadloop_core.errors import BagError

__all__ = ["open_storage"]


def open_storage(path: Path) -> StorageReader:
    """Open `path` with the backend its suffix names; BagError if it is not a readable storage file."""
    kind = storage_id_for(path)
    if kind == "sqlite3":
        return Sqlite3Storage(path)
    if kind == "mcap":
        return McapStorage(path)
    raise BagError(f"{path}: not a storage file of a known plugin (expected one of {', '.join(STORAGE_SUFFIXES)})")
