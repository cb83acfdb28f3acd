"""The SQL engine under `sql_catalog`: SQLite by default, PostgreSQL by URL, one schema and one SQL dialect.

Queries are written once with `?` placeholders and portable types (TEXT, BIGINT,
DOUBLE PRECISION); for PostgreSQL the placeholders become `%s`. One connection
serialised by a lock is plenty for a hub whose heavy work (hashing, disk) happens
outside the database.
"""

from __future__ import annotations

import sqlite3
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from roadloop_hub.errors import CatalogError

__all__ = ["Database", "open_database"]

SCHEMA = [
    """CREATE TABLE IF NOT EXISTS tokens (
        token_hash TEXT PRIMARY KEY, principal TEXT NOT NULL, role TEXT NOT NULL,
        created DOUBLE PRECISION NOT NULL, revoked INTEGER NOT NULL DEFAULT 0)""",
    """CREATE TABLE IF NOT EXISTS uploads (
        id TEXT PRIMARY KEY, vehicle TEXT NOT NULL, bag_name TEXT NOT NULL, size BIGINT NOT NULL,
        sha256 TEXT NOT NULL, chunk_size BIGINT NOT NULL, n_chunks INTEGER NOT NULL, priority INTEGER NOT NULL,
        tags TEXT NOT NULL, state TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, completed DOUBLE PRECISION,
        error TEXT NOT NULL DEFAULT '', piece TEXT NOT NULL DEFAULT '')""",
    "CREATE INDEX IF NOT EXISTS uploads_by_key ON uploads (vehicle, bag_name, sha256)",
    """CREATE TABLE IF NOT EXISTS chunks (
        upload_id TEXT NOT NULL, idx INTEGER NOT NULL, sha256 TEXT NOT NULL, size BIGINT NOT NULL,
        PRIMARY KEY (upload_id, idx))""",
    """CREATE TABLE IF NOT EXISTS challenges (upload_id TEXT PRIMARY KEY, challenge TEXT NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS chunk_events (
        upload_id TEXT NOT NULL, idx INTEGER NOT NULL, outcome TEXT NOT NULL, at DOUBLE PRECISION NOT NULL)""",
    "CREATE INDEX IF NOT EXISTS chunk_events_by_upload ON chunk_events (upload_id)",
    """CREATE TABLE IF NOT EXISTS objects (
        sha256 TEXT PRIMARY KEY, size BIGINT NOT NULL, storage TEXT NOT NULL, start_ns BIGINT NOT NULL,
        end_ns BIGINT NOT NULL, message_count BIGINT NOT NULL, readable INTEGER NOT NULL, error TEXT NOT NULL,
        custom_data TEXT NOT NULL, stored DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS topics (
        sha256 TEXT NOT NULL, topic TEXT NOT NULL, type TEXT NOT NULL, count BIGINT NOT NULL,
        PRIMARY KEY (sha256, topic))""",
    """CREATE TABLE IF NOT EXISTS bags (
        vehicle TEXT NOT NULL, bag_name TEXT NOT NULL, sha256 TEXT NOT NULL, priority INTEGER NOT NULL,
        tags TEXT NOT NULL, arrived DOUBLE PRECISION NOT NULL, upload_id TEXT NOT NULL,
        PRIMARY KEY (vehicle, bag_name, sha256))""",
    """CREATE TABLE IF NOT EXISTS bundles (
        id TEXT PRIMARY KEY, name TEXT NOT NULL, version INTEGER NOT NULL, manifest TEXT NOT NULL,
        stored DOUBLE PRECISION NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS releases (
        channel TEXT NOT NULL, seq INTEGER NOT NULL, bundle_id TEXT NOT NULL, action TEXT NOT NULL,
        principal TEXT NOT NULL, at DOUBLE PRECISION NOT NULL, PRIMARY KEY (channel, seq))""",
]
# Columns added after a table's first release: (table, column, definition), added to older catalogs at open.
ADDED_COLUMNS = [("uploads", "error", "TEXT NOT NULL DEFAULT ''"), ("uploads", "piece", "TEXT NOT NULL DEFAULT ''")]


class Database:
    """A DB-API connection behind a lock; `?` placeholders on both engines."""

    def __init__(self, conn: Any, kind: str, where: str) -> None:
        self._conn = conn
        self.kind = kind
        self.where = where
        self._lock = threading.RLock()
        self._depth = 0  # > 0 inside transaction(); single statements outside one commit on their own
        self._unsettled = False  # a rollback failed: roll back before anything else runs
        self._still_relaxed = False  # SQLite's synchronous=FULL could not be restored: restore it first

    def _sql(self, sql: str) -> str:
        return sql.replace("?", "%s") if self.kind == "postgresql" else sql

    def _error(self, err: Exception) -> CatalogError:
        """A driver's exception (sqlite3.Error, psycopg.Error, ...) as the catalog's one error (503, retryable)."""
        return CatalogError(f"{self.where}: {type(err).__name__}: {err}".splitlines()[0])

    def _rollback(self) -> None:
        """End the open transaction; if even that fails, remember it, so nothing runs on a half-done one."""
        try:
            self._conn.rollback()
        except Exception as err:
            self._unsettled = True
            raise self._error(err) from err
        self._unsettled = False

    def _settle(self) -> None:
        """Before anything at depth 0: a transaction whose rollback failed is rolled back first (never
        committed by the next statement), and a relaxed durability left behind is restored; CatalogError
        while that still fails."""
        if self._depth != 0:
            return
        if self._unsettled:
            self._rollback()
        if self._still_relaxed:
            self._setting("PRAGMA synchronous=FULL")
            self._still_relaxed = False

    def _setting(self, sql: str) -> None:
        """A PRAGMA or SET statement; a driver fault is a CatalogError."""
        try:
            self._conn.cursor().execute(sql)
        except Exception as err:
            raise self._error(err) from err

    @contextmanager
    def transaction(self, durable: bool = True) -> Iterator[Database]:
        """All statements inside commit together or not at all.

        `durable=False` (chunk bookkeeping only): the commit survives a hub crash but not
        necessarily a power loss (SQLite synchronous=NORMAL, PostgreSQL synchronous_commit=off),
        which the whole-object sha256 at completion makes harmless.

        A fault of the database itself (disk full or I/O error at the commit, a lock not granted, a
        lost connection) is a CatalogError (503: retry); the transaction is rolled back either way.
        """
        with self._lock:
            self._settle()
            relaxed = not durable and self._depth == 0
            if relaxed and self.kind == "sqlite":
                self._setting("PRAGMA synchronous=NORMAL")
            self._depth += 1
            try:
                if relaxed and self.kind == "postgresql":
                    self._setting("SET LOCAL synchronous_commit TO OFF")
                yield self
                if self._depth == 1:
                    try:
                        self._conn.commit()
                    except Exception as err:  # rolled back below: a failed commit never stays half-open
                        raise self._error(err) from err
            except BaseException as err:
                if self._depth == 1:
                    try:
                        self._rollback()
                    except CatalogError as failed:
                        if isinstance(err, Exception):  # the database is the fault now (KeyboardInterrupt stays)
                            raise failed from err
                raise
            finally:
                self._depth -= 1
                if relaxed and self.kind == "sqlite":
                    try:
                        self._setting("PRAGMA synchronous=FULL")
                    except CatalogError:  # the transaction's outcome stands; restored before the next one
                        self._still_relaxed = True

    def _run(self, sql: str, params: Sequence[Any], fetch: bool) -> tuple[int, list[dict[str, Any]]]:
        with self._lock:
            self._settle()
            try:
                cur = self._conn.cursor()
                cur.execute(self._sql(sql), tuple(params))
                rows: list[dict[str, Any]] = []
                if fetch:
                    cols = [d[0] for d in cur.description]
                    rows = [dict(zip(cols, row, strict=True)) for row in cur.fetchall()]
                if self._depth == 0:  # never leave a read transaction open (PostgreSQL would hold it)
                    self._conn.commit()
                return int(cur.rowcount), rows
            except Exception as err:
                if self._depth == 0:
                    self._rollback()  # a failed statement must not poison the next ones
                raise self._error(err) from err

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        return self._run(sql, params, fetch=False)[0]

    def query(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        return self._run(sql, params, fetch=True)[1]

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        rows = self.query(sql, params)
        return rows[0] if rows else None

    def columns(self, table: str) -> set[str]:
        """The column names of `table` (portable: the cursor description of an empty select)."""
        with self._lock:
            self._settle()
            try:
                cur = self._conn.cursor()
                cur.execute(f"SELECT * FROM {table} WHERE 1 = 0")
            except Exception as err:
                raise self._error(err) from err
            return {str(d[0]) for d in cur.description}

    def commit(self) -> None:
        with self._lock:
            self._settle()
            try:
                self._conn.commit()
            except Exception as err:
                self._rollback()
                raise self._error(err) from err

    def close(self) -> None:
        with self._lock:
            try:
                self._conn.close()
            except Exception as err:
                raise self._error(err) from err


def open_database(url: str, root: Path) -> Database:
    """`url` empty: SQLite at ROOT/catalog.db; `sqlite:///path`; or `postgresql://...` (psycopg)."""
    if url.startswith(("postgresql://", "postgres://")):
        try:
            import psycopg
        except ImportError as err:
            raise CatalogError(f"{url}: psycopg is not installed") from err
        try:
            conn: Any = psycopg.connect(url, connect_timeout=10)
        except psycopg.Error as err:
            raise CatalogError(f"cannot connect to PostgreSQL: {str(err).strip().splitlines()[0]}") from err
        db = Database(conn, "postgresql", "postgresql catalog")
    else:
        path = Path(url.removeprefix("sqlite:///")) if url else root / "catalog.db"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            sconn = sqlite3.connect(path, check_same_thread=False, timeout=30.0, isolation_level="DEFERRED")
            sconn.execute("PRAGMA journal_mode=WAL")
            sconn.execute("PRAGMA synchronous=FULL")
        except (sqlite3.Error, OSError) as err:
            raise CatalogError(f"{path}: cannot open the catalog: {err}") from err
        db = Database(sconn, "sqlite", str(path))
    with db.transaction():
        for stmt in SCHEMA:
            db.execute(stmt)
        for table, column, definition in ADDED_COLUMNS:
            if column not in db.columns(table):
                db.execute(f"ALTER TABLE {table} ADD COLUMN {column} {definition}")
    return db
