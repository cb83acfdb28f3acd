"""The persistent upload queue: one SQLite file in the state folder that survives `kill -9`.

WAL + synchronous=FULL: a state change is on disk before the bridge acts on it, so after
a crash the bridge resumes from the last committed state and asks the hub which
chunks it already holds (the hub, not this file, is the truth about chunks).

States: queued -> confirmed (hub verified the sha256) -> deleted (local disk freed);
failed (the hub refused the bag for good; kept on disk, never deleted).

A recording still being written ships in pieces (`pieces` = 1): its row is `recording` while
the recorder writes, each finished file gets a row in `pieces` (queued -> confirmed, with the
size and mtime its sha256 was computed over), and once the recorder stops the bag is `queued`:
the remaining files ship, then the hub assembles the bag from the pieces and it is `confirmed`.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roadloop_vehicle.bridge.decisions import LocalBag
from roadloop_vehicle.bridge.errors import BridgeError

__all__ = ["RECORDING", "Piece", "QueueEntry", "UploadQueue"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS bags (
    name TEXT PRIMARY KEY,
    state TEXT NOT NULL,
    priority INTEGER NOT NULL,
    tags TEXT NOT NULL,
    start_ns INTEGER NOT NULL,
    discovered REAL NOT NULL,
    size INTEGER,
    sha256 TEXT,
    files TEXT,
    upload_id TEXT,
    attempts INTEGER NOT NULL DEFAULT 0,
    last_error TEXT NOT NULL DEFAULT '',
    confirmed REAL,
    pieces INTEGER NOT NULL DEFAULT 0
)"""
_PIECES = """
CREATE TABLE IF NOT EXISTS pieces (
    bag TEXT NOT NULL,
    file TEXT NOT NULL,
    state TEXT NOT NULL,
    size INTEGER,
    mtime_ns INTEGER,
    sha256 TEXT,
    upload_id TEXT,
    PRIMARY KEY (bag, file)
)"""
# Columns added after a table's first release: added to the queue of an older bridge when it is opened.
_ADDED_COLUMNS = [("bags", "pieces", "INTEGER NOT NULL DEFAULT 0")]
RECORDING = "recording"  # a bag still being written whose finished files ship as pieces


@dataclass(frozen=True)
class QueueEntry:
    name: str
    state: str
    priority: int
    tags: list[str]
    start_ns: int
    size: int | None
    sha256: str | None
    files: list[list[Any]] | None  # [(name, size, mtime_ns)] the sha256 was computed over
    upload_id: str | None
    attempts: int
    last_error: str
    pieces: bool = False  # ships one file per upload, assembled by the hub (a recording shipped while written)

    def local(self, size: int) -> LocalBag:
        return LocalBag(self.name, size, self.start_ns, self.priority, self.state == "confirmed")


@dataclass(frozen=True)
class Piece:
    bag: str
    file: str
    state: str  # queued | confirmed
    size: int | None  # what the sha256 was computed over (None: not hashed yet)
    mtime_ns: int | None
    sha256: str | None
    upload_id: str | None


class UploadQueue:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
            self._db.execute(_PIECES)
            for table, column, definition in _ADDED_COLUMNS:
                have = {str(r[1]) for r in self._db.execute(f"PRAGMA table_info({table})")}
                if column not in have:
                    self._db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
        except (sqlite3.Error, OSError) as err:
            raise BridgeError(f"{path}: cannot open the upload queue: {err}") from err

    def close(self) -> None:
        self._db.close()

    def _row(self, r: tuple[Any, ...]) -> QueueEntry:
        return QueueEntry(
            name=r[0],
            state=r[1],
            priority=r[2],
            tags=json.loads(r[3]),
            start_ns=r[4],
            size=r[5],
            sha256=r[6],
            files=json.loads(r[7]) if r[7] else None,
            upload_id=r[8],
            attempts=r[9],
            last_error=r[10],
            pieces=bool(r[11]),
        )

    _COLS = "name, state, priority, tags, start_ns, size, sha256, files, upload_id, attempts, last_error, pieces"

    def get(self, name: str) -> QueueEntry | None:
        row = self._db.execute(f"SELECT {self._COLS} FROM bags WHERE name = ?", (name,)).fetchone()
        return self._row(row) if row else None

    def add(self, name: str, priority: int, tags: list[str], start_ns: int) -> bool:
        """Queue a closed bag once; True if it was new."""
        cur = self._db.execute(
            "INSERT INTO bags (name, state, priority, tags, start_ns, discovered) VALUES (?, 'queued', ?, ?, ?, ?)"
            " ON CONFLICT (name) DO NOTHING",
            (name, priority, json.dumps(tags), start_ns, time.time()),
        )
        return cur.rowcount == 1

    def add_recording(self, name: str, priority: int, tags: list[str], start_ns: int) -> bool:
        """Track a bag still being written (its finished files ship as pieces) once; True if it was new."""
        cur = self._db.execute(
            "INSERT INTO bags (name, state, priority, tags, start_ns, discovered, pieces) VALUES (?, ?, ?, ?, ?, ?, 1)"
            " ON CONFLICT (name) DO NOTHING",
            (name, RECORDING, priority, json.dumps(tags), start_ns, time.time()),
        )
        return cur.rowcount == 1

    def stopped(self, name: str, priority: int, tags: list[str], start_ns: int) -> bool:
        """The recorder finished the bag: queue its rest and its assembly (priority and tags as now known)."""
        cur = self._db.execute(
            "UPDATE bags SET state = 'queued', priority = MAX(priority, ?), tags = ?, start_ns = ?"
            " WHERE name = ? AND state = ?",
            (priority, json.dumps(tags), start_ns, name, RECORDING),
        )
        return cur.rowcount == 1

    def pending(self) -> list[QueueEntry]:
        """Bags with something to send, in upload order: priority, then oldest recording first."""
        rows = self._db.execute(
            f"SELECT {self._COLS} FROM bags WHERE state = 'queued' OR (state = ? AND EXISTS"
            " (SELECT 1 FROM pieces p WHERE p.bag = bags.name AND p.state = 'queued'))"
            " ORDER BY priority DESC, start_ns, name",
            (RECORDING,),
        ).fetchall()
        return [self._row(r) for r in rows]

    # -- pieces ----------------------------------------------------------------------------------
    def add_piece(self, bag: str, file: str) -> bool:
        cur = self._db.execute(
            "INSERT INTO pieces (bag, file, state) VALUES (?, ?, 'queued') ON CONFLICT (bag, file) DO NOTHING",
            (bag, file),
        )
        return cur.rowcount == 1

    def pieces_of(self, bag: str) -> list[Piece]:
        rows = self._db.execute(
            "SELECT bag, file, state, size, mtime_ns, sha256, upload_id FROM pieces WHERE bag = ? ORDER BY file",
            (bag,),
        ).fetchall()
        return [Piece(*r) for r in rows]

    def set_piece_content(self, bag: str, file: str, size: int, mtime_ns: int, sha256: str) -> None:
        self._db.execute(
            "UPDATE pieces SET state = 'queued', size = ?, mtime_ns = ?, sha256 = ?, upload_id = NULL"
            " WHERE bag = ? AND file = ?",
            (size, mtime_ns, sha256, bag, file),
        )

    def set_piece_upload(self, bag: str, file: str, upload_id: str | None) -> None:
        self._db.execute("UPDATE pieces SET upload_id = ? WHERE bag = ? AND file = ?", (upload_id, bag, file))

    def confirm_piece(self, bag: str, file: str) -> None:
        self._db.execute("UPDATE pieces SET state = 'confirmed' WHERE bag = ? AND file = ?", (bag, file))

    def unconfirm_pieces(self, bag: str) -> None:
        """The hub no longer has what it confirmed: send every piece again (its hash still holds)."""
        self._db.execute("UPDATE pieces SET state = 'queued' WHERE bag = ?", (bag,))

    def requeue_piece(self, bag: str, file: str) -> None:
        """The file is not what was shipped any more: hash and send it again."""
        self._db.execute(
            "UPDATE pieces SET state = 'queued', sha256 = NULL, upload_id = NULL WHERE bag = ? AND file = ?",
            (bag, file),
        )

    def in_state(self, state: str) -> list[QueueEntry]:
        rows = self._db.execute(f"SELECT {self._COLS} FROM bags WHERE state = ? ORDER BY start_ns, name", (state,))
        return [self._row(r) for r in rows.fetchall()]

    def all(self) -> list[QueueEntry]:
        rows = self._db.execute(f"SELECT {self._COLS} FROM bags ORDER BY state, priority DESC, start_ns, name")
        return [self._row(r) for r in rows.fetchall()]

    def set_content(self, name: str, size: int, sha256: str, files: list[tuple[str, int, int]]) -> None:
        self._db.execute(
            "UPDATE bags SET size = ?, sha256 = ?, files = ?, upload_id = NULL WHERE name = ?",
            (size, sha256, json.dumps(files), name),
        )

    def set_upload(self, name: str, upload_id: str | None) -> None:
        self._db.execute("UPDATE bags SET upload_id = ? WHERE name = ?", (upload_id, name))

    def failed_attempt(self, name: str, error: str) -> int:
        self._db.execute("UPDATE bags SET attempts = attempts + 1, last_error = ? WHERE name = ?", (error, name))
        entry = self.get(name)
        return entry.attempts if entry else 0

    def confirm(self, name: str) -> None:
        self._db.execute(
            "UPDATE bags SET state = 'confirmed', confirmed = ?, last_error = '', attempts = 0 WHERE name = ?",
            (time.time(), name),
        )

    def fail(self, name: str, error: str) -> None:
        self._db.execute("UPDATE bags SET state = 'failed', last_error = ? WHERE name = ?", (error, name))

    def deleted(self, name: str) -> None:
        self._db.execute("UPDATE bags SET state = 'deleted' WHERE name = ?", (name,))

    def reset_attempts(self) -> None:
        self._db.execute("UPDATE bags SET attempts = 0 WHERE state IN ('queued', ?)", (RECORDING,))
