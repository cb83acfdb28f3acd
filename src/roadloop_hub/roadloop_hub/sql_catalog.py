"""The catalog interface (`catalog.Catalog`) on SQL: SQLite by default, PostgreSQL by URL (`db.Database`).

Every SQL statement of the hub is here (the schema is in `db`). Tags and custom data are JSON
text columns; booleans are INTEGER 0/1 (portable to both engines).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from roadloop_core.contract.wire import COMPLETE, FAILED, OPEN
from roadloop_hub.catalog import (
    BagEntry,
    BundleRecord,
    CatalogedBag,
    ChunkEvent,
    Release,
    StoredObject,
    TokenRecord,
    TopicCount,
    UploadRecord,
)
from roadloop_hub.db import Database, open_database

__all__ = ["SqlCatalog", "open_catalog"]


def open_catalog(url: str, root: Path) -> SqlCatalog:
    """`url` empty: SQLite at ROOT/catalog.db; `sqlite:///path`; or `postgresql://...` (psycopg)."""
    return SqlCatalog(open_database(url, root))


def _upload(row: dict[str, Any]) -> UploadRecord:
    return UploadRecord(
        id=str(row["id"]),
        vehicle=str(row["vehicle"]),
        bag_name=str(row["bag_name"]),
        size=int(row["size"]),
        sha256=str(row["sha256"]),
        chunk_size=int(row["chunk_size"]),
        n_chunks=int(row["n_chunks"]),
        priority=int(row["priority"]),
        tags=tuple(json.loads(row["tags"])),
        state=str(row["state"]),
        created=float(row["created"]),
        completed=None if row["completed"] is None else float(row["completed"]),
        error=str(row.get("error") or ""),
        piece=str(row.get("piece") or ""),
    )


def _object(row: dict[str, Any], topics: tuple[TopicCount, ...]) -> StoredObject:
    return StoredObject(
        sha256=str(row["sha256"]),
        size=int(row["size"]),
        storage=str(row["storage"]),
        start_ns=int(row["start_ns"]),
        end_ns=int(row["end_ns"]),
        message_count=int(row["message_count"]),
        readable=bool(row["readable"]),
        error=str(row["error"]),
        custom_data=json.loads(row["custom_data"]),
        stored=float(row["stored"]),
        topics=topics,
    )


def _entry(row: dict[str, Any]) -> BagEntry:
    return BagEntry(
        vehicle=str(row["vehicle"]),
        bag_name=str(row["bag_name"]),
        sha256=str(row["sha256"]),
        priority=int(row["priority"]),
        tags=tuple(json.loads(row["tags"])),
        arrived=float(row["arrived"]),
        upload_id=str(row["upload_id"]),
    )


def _release(row: dict[str, Any]) -> Release:
    return Release(
        channel=str(row["channel"]),
        seq=int(row["seq"]),
        bundle_id=str(row["bundle_id"]),
        action=str(row["action"]),
        principal=str(row["principal"]),
        at=float(row["at"]),
    )


def _token(row: dict[str, Any]) -> TokenRecord:
    return TokenRecord(
        token_hash=str(row["token_hash"]),
        principal=str(row["principal"]),
        role=str(row["role"]),
        created=float(row["created"]),
        revoked=bool(row["revoked"]),
    )


class SqlCatalog:
    """`catalog.Catalog` over one `Database` connection."""

    def __init__(self, db: Database) -> None:
        self.db = db

    @property
    def kind(self) -> str:
        return self.db.kind

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.db.transaction():
            yield

    def close(self) -> None:
        self.db.close()

    # -- uploads ---------------------------------------------------------------------------------
    def add_upload(self, upload: UploadRecord) -> None:
        u = upload
        self.db.execute(
            "INSERT INTO uploads (id, vehicle, bag_name, size, sha256, chunk_size, n_chunks, priority, tags, state,"
            " created, completed, error, piece) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (u.id, u.vehicle, u.bag_name, u.size, u.sha256, u.chunk_size, u.n_chunks, u.priority,
             json.dumps(list(u.tags)), u.state, u.created, u.completed, u.error, u.piece),
        )  # fmt: skip

    def get_upload(self, upload_id: str) -> UploadRecord | None:
        row = self.db.one("SELECT * FROM uploads WHERE id = ?", (upload_id,))
        return None if row is None else _upload(row)

    def find_upload(self, vehicle: str, bag_name: str, sha256: str) -> UploadRecord | None:
        row = self.db.one(
            "SELECT * FROM uploads WHERE vehicle = ? AND bag_name = ? AND sha256 = ? ORDER BY created DESC",
            (vehicle, bag_name, sha256),
        )
        return None if row is None else _upload(row)

    def find_piece(self, vehicle: str, bag_name: str, sha256: str, piece: str) -> UploadRecord | None:
        row = self.db.one(
            "SELECT * FROM uploads WHERE vehicle = ? AND bag_name = ? AND sha256 = ? AND piece = ? AND state = ?"
            " ORDER BY created DESC",
            (vehicle, bag_name, sha256, piece, COMPLETE),
        )
        return None if row is None else _upload(row)

    def count_open_uploads(self, vehicle: str) -> int:
        row = self.db.one("SELECT COUNT(*) AS n FROM uploads WHERE vehicle = ? AND state = ?", (vehicle, OPEN))
        return 0 if row is None else int(row["n"])

    def list_uploads(self, vehicle: str | None) -> list[UploadRecord]:
        if vehicle is None:
            rows = self.db.query("SELECT * FROM uploads ORDER BY created")
        else:
            rows = self.db.query("SELECT * FROM uploads WHERE vehicle = ? ORDER BY created", (vehicle,))
        return [_upload(r) for r in rows]

    def set_upload_state(self, upload_id: str, state: str, completed: float | None = None) -> None:
        if completed is None:
            self.db.execute("UPDATE uploads SET state = ? WHERE id = ?", (state, upload_id))
        else:
            self.db.execute("UPDATE uploads SET state = ?, completed = ? WHERE id = ?", (state, completed, upload_id))

    def fail_upload(self, upload_id: str, error: str) -> None:
        self.db.execute("UPDATE uploads SET state = ?, error = ? WHERE id = ?", (FAILED, error, upload_id))

    def add_challenge(self, upload_id: str, challenge: str) -> None:
        self.db.execute("INSERT INTO challenges (upload_id, challenge) VALUES (?, ?)", (upload_id, challenge))

    def get_challenge(self, upload_id: str) -> str | None:
        row = self.db.one("SELECT challenge FROM challenges WHERE upload_id = ?", (upload_id,))
        return None if row is None else str(row["challenge"])

    def take_challenge(self, upload_id: str) -> str | None:
        with self.db.transaction():
            found = self.get_challenge(upload_id)
            if found is not None:
                self.db.execute("DELETE FROM challenges WHERE upload_id = ?", (upload_id,))
        return found

    def stale_uploads(self, cutoff: float) -> list[str]:
        rows = self.db.query(
            "SELECT u.id FROM uploads u WHERE u.state = ? AND u.created < ? AND NOT EXISTS"
            " (SELECT 1 FROM chunk_events e WHERE e.upload_id = u.id AND e.at >= ?)",
            (OPEN, cutoff, cutoff),
        )
        return [str(r["id"]) for r in rows]

    def held_chunks(self, upload_id: str) -> list[int]:
        rows = self.db.query("SELECT idx FROM chunks WHERE upload_id = ? ORDER BY idx", (upload_id,))
        return [int(r["idx"]) for r in rows]

    def held_chunk_sha256(self, upload_id: str, idx: int) -> str | None:
        row = self.db.one("SELECT sha256 FROM chunks WHERE upload_id = ? AND idx = ?", (upload_id, idx))
        return None if row is None else str(row["sha256"])

    def record_chunk(self, upload_id: str, idx: int, sha256: str, size: int, at: float) -> None:
        with self.db.transaction(durable=False):
            self.db.execute("DELETE FROM chunks WHERE upload_id = ? AND idx = ?", (upload_id, idx))
            self.db.execute(
                "INSERT INTO chunks (upload_id, idx, sha256, size) VALUES (?, ?, ?, ?)", (upload_id, idx, sha256, size)
            )
            self.db.execute(
                "INSERT INTO chunk_events (upload_id, idx, outcome, at) VALUES (?, ?, 'stored', ?)",
                (upload_id, idx, at),
            )

    def drop_chunks(self, upload_id: str) -> None:
        self.db.execute("DELETE FROM chunks WHERE upload_id = ?", (upload_id,))

    def add_chunk_event(self, upload_id: str, idx: int, outcome: str, at: float) -> None:
        self.db.execute(
            "INSERT INTO chunk_events (upload_id, idx, outcome, at) VALUES (?, ?, ?, ?)", (upload_id, idx, outcome, at)
        )

    def chunk_events(self, upload_id: str) -> list[ChunkEvent]:
        rows = self.db.query(
            "SELECT idx, outcome, at FROM chunk_events WHERE upload_id = ? ORDER BY at, idx", (upload_id,)
        )
        return [ChunkEvent(int(r["idx"]), str(r["outcome"]), float(r["at"])) for r in rows]

    # -- bags ------------------------------------------------------------------------------------
    def _topics(self, which: str, params: list[Any]) -> dict[str, tuple[TopicCount, ...]]:
        """Topics of the objects whose sha256 `which` selects (a fixed subquery: no parameter per object)."""
        rows = self.db.query(
            f"SELECT sha256, topic, type, count FROM topics WHERE sha256 IN ({which}) ORDER BY topic", params
        )
        out: dict[str, list[TopicCount]] = {}
        for r in rows:
            out.setdefault(str(r["sha256"]), []).append(TopicCount(str(r["topic"]), str(r["type"]), int(r["count"])))
        return {sha: tuple(topics) for sha, topics in out.items()}

    def get_object(self, sha256: str) -> StoredObject | None:
        row = self.db.one("SELECT * FROM objects WHERE sha256 = ?", (sha256,))
        return None if row is None else _object(row, self._topics("?", [sha256]).get(sha256, ()))

    def add_object(self, obj: StoredObject) -> None:
        o = obj
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO objects (sha256, size, storage, start_ns, end_ns, message_count, readable, error,"
                " custom_data, stored) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (o.sha256, o.size, o.storage, o.start_ns, o.end_ns, o.message_count, int(o.readable), o.error,
                 json.dumps(o.custom_data), o.stored),
            )  # fmt: skip
            for t in o.topics:
                self.db.execute(
                    "INSERT INTO topics (sha256, topic, type, count) VALUES (?, ?, ?, ?)",
                    (o.sha256, t.topic, t.type, t.count),
                )

    def add_bag_entry(self, entry: BagEntry) -> None:
        e = entry
        self.db.execute(
            "INSERT INTO bags (vehicle, bag_name, sha256, priority, tags, arrived, upload_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (vehicle, bag_name, sha256) DO NOTHING",
            (e.vehicle, e.bag_name, e.sha256, e.priority, json.dumps(list(e.tags)), e.arrived, e.upload_id),
        )

    def bag_entries(self, sha256: str) -> list[BagEntry]:
        return [_entry(r) for r in self.db.query("SELECT * FROM bags WHERE sha256 = ? ORDER BY arrived", (sha256,))]

    def list_bags(self, vehicle: str | None) -> list[CatalogedBag]:
        sql = (
            "SELECT b.vehicle, b.bag_name, b.sha256, b.priority, b.tags, b.arrived, b.upload_id, o.size, o.storage,"
            " o.start_ns, o.end_ns, o.message_count, o.readable, o.error, o.custom_data, o.stored"
            " FROM bags b JOIN objects o ON o.sha256 = b.sha256"
        )
        which = "SELECT sha256 FROM bags"
        params: list[Any] = []
        if vehicle is not None:
            sql += " WHERE b.vehicle = ?"
            which += " WHERE vehicle = ?"
            params.append(vehicle)
        with self.db.transaction():  # the entries and their topics from one snapshot
            rows = self.db.query(sql + " ORDER BY b.arrived, b.bag_name", params)
            topics = self._topics(which, params)
        return [CatalogedBag(_entry(r), _object(r, topics.get(str(r["sha256"]), ()))) for r in rows]

    # -- registry --------------------------------------------------------------------------------
    def add_bundle(self, bundle: BundleRecord) -> None:
        b = bundle
        self.db.execute(
            "INSERT INTO bundles (id, name, version, manifest, stored) VALUES (?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO NOTHING",
            (b.id, b.name, b.version, b.manifest, b.stored),
        )

    def get_bundle(self, bundle_id: str) -> BundleRecord | None:
        row = self.db.one("SELECT id, name, version, manifest, stored FROM bundles WHERE id = ?", (bundle_id,))
        if row is None:
            return None
        return BundleRecord(str(row["id"]), str(row["name"]), int(row["version"]), str(row["manifest"]),
                            float(row["stored"]))  # fmt: skip

    def append_release(self, channel: str, bundle_id: str, action: str, principal: str, at: float) -> Release:
        with self.db.transaction():
            last = self.db.one("SELECT MAX(seq) AS seq FROM releases WHERE channel = ?", (channel,))
            seq = int(last["seq"]) + 1 if last and last["seq"] is not None else 1
            self.db.execute(
                "INSERT INTO releases (channel, seq, bundle_id, action, principal, at) VALUES (?, ?, ?, ?, ?, ?)",
                (channel, seq, bundle_id, action, principal, at),
            )
        return Release(channel, seq, bundle_id, action, principal, at)

    def releases(self, channel: str) -> list[Release]:
        return [_release(r) for r in self.db.query("SELECT * FROM releases WHERE channel = ? ORDER BY seq", (channel,))]

    def latest_release(self, channel: str) -> Release | None:
        row = self.db.one("SELECT * FROM releases WHERE channel = ? ORDER BY seq DESC LIMIT 1", (channel,))
        return None if row is None else _release(row)

    # -- tokens ----------------------------------------------------------------------------------
    def add_token(self, token: TokenRecord) -> None:
        t = token
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO tokens (token_hash, principal, role, created, revoked) VALUES (?, ?, ?, ?, ?)",
                (t.token_hash, t.principal, t.role, t.created, int(t.revoked)),
            )

    def revoke_tokens(self, principal: str) -> int:
        with self.db.transaction():
            return self.db.execute("UPDATE tokens SET revoked = 1 WHERE principal = ? AND revoked = 0", (principal,))

    def list_tokens(self) -> list[TokenRecord]:
        return [_token(r) for r in self.db.query("SELECT * FROM tokens ORDER BY principal, created")]

    def active_token(self, token_hash: str) -> TokenRecord | None:
        row = self.db.one("SELECT * FROM tokens WHERE token_hash = ? AND revoked = 0", (token_hash,))
        return None if row is None else _token(row)
