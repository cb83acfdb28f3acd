"""sqlite3 storage backend (rosbag2 `.db3`), schema versions 1..4, read with the stdlib `sqlite3`."""

from __future__ import annotations

import sqlite3
from collections.abc import Collection, Iterator
from pathlib import Path

from roadloop_core.bag.storage import ScannedStorage
from roadloop_core.bag.types import StorageTopic
from roadloop_core.errors import BagDamagedError, BagError

__all__ = ["Sqlite3Storage"]


def _check_file_size(path: Path) -> None:
    """Refuse a truncated database: opened immutable, SQLite would read a short last page as zeros."""
    try:
        size = path.stat().st_size
        with open(path, "rb") as f:
            header = f.read(100)
    except OSError as err:
        raise BagError(f"{path}: cannot read: {err.strerror}") from err
    if len(header) < 100 or not header.startswith(b"SQLite format 3\x00"):
        raise BagError(f"{path}: not an sqlite3 database (bad header)")
    page = int.from_bytes(header[16:18], "big")
    page = 65536 if page == 1 else page
    if page < 512 or page & (page - 1):
        raise BagDamagedError(f"{path}: damaged sqlite3 header (page size {page})")
    if size % page:
        raise BagDamagedError(
            f"{path}: truncated sqlite3 file ({size} bytes is not a whole number of {page}-byte pages)"
        )
    pages = int.from_bytes(header[28:32], "big")
    # The in-header page count is only valid when the two change counters agree.
    if header[24:28] == header[92:96] and pages and size < pages * page:
        raise BagDamagedError(f"{path}: truncated sqlite3 file ({size} bytes, the header says {pages * page})")


class Sqlite3Storage(ScannedStorage):
    """One rosbag2 sqlite3 file, opened read-only and immutable (never modified, no journal)."""

    storage_id = "sqlite3"
    chunk_compression = ""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.custom_data: dict[str, str] = {}
        self.problems: list[str] = []
        _check_file_size(path)
        try:
            self._db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro&immutable=1", uri=True)
        except sqlite3.Error as err:
            raise BagError(f"{path}: cannot open as sqlite3: {err}") from err
        try:
            self._load()
        except sqlite3.Error as err:
            self._db.close()
            raise BagDamagedError(f"{path}: damaged or not a rosbag2 sqlite3 file: {err}") from err
        except (TypeError, ValueError) as err:  # a NULL or a string where the schema has an integer
            self._db.close()
            raise BagDamagedError(f"{path}: damaged rosbag2 sqlite3 file: a malformed value ({err})") from err
        except BagError:
            self._db.close()
            raise

    def _columns(self, table: str) -> set[str]:
        return {row[1] for row in self._db.execute(f"PRAGMA table_info({table})")}

    def _load(self) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not {"topics", "messages"} <= tables:
            raise BagError(f"{self.path}: not a rosbag2 sqlite3 file (no topics/messages tables)")
        cols = self._columns("topics")
        qos = "offered_qos_profiles" if "offered_qos_profiles" in cols else "''"
        digest = "type_description_hash" if "type_description_hash" in cols else "''"
        rows = self._db.execute(
            f"SELECT id, name, type, serialization_format, {qos}, {digest} FROM topics ORDER BY id"
        ).fetchall()
        counts: dict[int, int] = {}
        first, last = 0, 0
        stats = self._db.execute(
            "SELECT topic_id, COUNT(*), MIN(timestamp), MAX(timestamp) FROM messages GROUP BY topic_id"
        ).fetchall()
        known = {int(r[0]) for r in rows}
        spans = [(int(lo), int(hi)) for tid, _, lo, hi in stats if int(tid) in known]
        for tid, n, _, _ in stats:
            counts[int(tid)] = int(n)
        orphans = {int(tid): int(n) for tid, n, _, _ in stats if int(tid) not in known}
        if orphans:
            self.problems.append(
                f"{self.path}: {sum(orphans.values())} message(s) refer to topic id(s) {sorted(orphans)} that the "
                "topics table does not hold; they cannot be read"
            )
        if spans:
            first, last = min(s[0] for s in spans), max(s[1] for s in spans)
        defs: dict[str, tuple[str, str]] = {}
        if "message_definitions" in tables:
            for typ, enc, text in self._db.execute(
                "SELECT topic_type, encoding, encoded_message_definition FROM message_definitions"
            ):
                defs[str(typ)] = (str(text), str(enc))
        self._topics = []
        for tid, name, typ, fmt, qos_text, digest_text in rows:
            text, enc = defs.get(str(typ), ("", ""))
            self._topics.append(
                StorageTopic(
                    id=int(tid),
                    name=str(name),
                    type=str(typ),
                    serialization_format=str(fmt),
                    offered_qos_profiles=str(qos_text),
                    type_description_hash=str(digest_text),
                    message_count=counts.get(int(tid), 0),
                    definition=text,
                    definition_encoding=enc,
                )
            )
        self._defs = defs
        self._range = (first, last)
        self._metadata = ""
        if "metadata" in tables:
            row = self._db.execute("SELECT metadata FROM metadata ORDER BY id DESC LIMIT 1").fetchone()
            self._metadata = str(row[0]) if row else ""

    def messages(self, topic_ids: Collection[int] | None = None) -> Iterator[tuple[int, int, bytes | memoryview]]:
        # The timestamp index orders ties by rowid, i.e. by insertion: deterministic.
        query = "SELECT topic_id, timestamp, data FROM messages"
        args: tuple[int, ...] = ()
        if topic_ids is not None:
            args = tuple(topic_ids)
            query += f" WHERE topic_id IN ({','.join('?' * len(args))})"
        query += " ORDER BY timestamp"
        try:
            # Not `yield from`: that would call cursor.close() when the generator is dropped, which
            # raises once the database is closed.
            for row in self._db.execute(query, args):
                if type(row[0]) is not int or type(row[1]) is not int or not isinstance(row[2], bytes):
                    raise BagDamagedError(f"{self.path}: damaged sqlite3 file: a message row holds {row[:2]!r}")
                yield row
        except sqlite3.Error as err:
            raise BagDamagedError(f"{self.path}: damaged sqlite3 file while reading messages: {err}") from err

    def verify_file(self) -> str:
        try:
            rows = [str(r[0]) for r in self._db.execute("PRAGMA quick_check")]
        except sqlite3.Error as err:
            return f"{self.path}: sqlite3 integrity check failed: {err}"
        if rows == ["ok"]:
            return ""
        found = "; ".join(" ".join(r.split()) for r in rows[:3])  # sqlite's report spans lines: one line here
        return f"{self.path}: sqlite3 integrity check: {found}"

    def close(self) -> None:
        self._db.close()
