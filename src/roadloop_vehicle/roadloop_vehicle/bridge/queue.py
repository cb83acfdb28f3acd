"""The persistent upload queue: one SQLite file in the state folder that survives `kill -9`.

WAL + synchronous=FULL: a state change is on disk before the bridge acts on it, so after
a crash the bridge resumes from the last committed state and asks the hub which
chunks it already holds (the hub, not this file, is the truth about chunks).

States: queued -> confirmed (hub verified the sha256) -> deleted (local disk freed);
failed (the hub refused the bag for good; kept on disk, never deleted).
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

__all__ = ["QueueEntry", "UploadQueue"]

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
    confirmed REAL
)"""


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

    def local(self, size: int) -> LocalBag:
        return LocalBag(self.name, size, self.start_ns, self.priority, self.state == "confirmed")


class UploadQueue:
    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._db = sqlite3.connect(path, timeout=30.0, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
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
        )

    _COLS = "name, state, priority, tags, start_ns, size, sha256, files, upload_id, attempts, last_error"

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

    def pending(self) -> list[QueueEntry]:
        """Queued bags in upload order: priority, then oldest recording first."""
        rows = self._db.execute(
            f"SELECT {self._COLS} FROM bags WHERE state = 'queued' ORDER BY priority DESC, start_ns, name"
        ).fetchall()
        return [self._row(r) for r in rows]

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
        self._db.execute("UPDATE bags SET attempts = 0 WHERE state = 'queued'")
