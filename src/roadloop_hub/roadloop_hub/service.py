"""What the hub does, without HTTP: uploads, catalog, registry. The FastAPI layer only maps requests here.

Every method takes the authenticated `Principal` and enforces who may do what;
refusals are `RequestRefused(status, detail)`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from roadloop_cluster.hub.auth import Principal
from roadloop_cluster.hub.config import HubConfig
from roadloop_cluster.hub.db import Database
from roadloop_cluster.hub.errors import HubError, RequestRefused, StoreError
from roadloop_cluster.hub.store import BlobStore
from roadloop_core.bag import open_bag
from roadloop_core.bundle import MANIFEST_FILE, verify_bundle
from roadloop_core.errors import RoadloopError
from roadloop_vehicle.bridge.wire import CHANNEL_RE, SHA256_RE, check_name, chunk_count, chunk_range

__all__ = ["ChunkSlot", "Hub"]

MIN_CHUNK = 64 << 10
log = logging.getLogger("roadloop.hub")


def _name(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise RequestRefused(400, f"{what} must be a string")
    try:
        return check_name(value, what)
    except ValueError as err:
        raise RequestRefused(400, str(err)) from None


def _sha(value: Any, what: str) -> str:
    if not isinstance(value, str) or not SHA256_RE.match(value):
        raise RequestRefused(400, f"{what} must be 64 lowercase hex digits")
    return value


def _int(value: Any, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RequestRefused(400, f"{what} must be an integer in [{lo}, {hi}]")
    return value


@dataclass(frozen=True)
class ChunkSlot:
    row: dict[str, Any]
    idx: int
    sha: str  # as declared by the vehicle
    offset: int
    length: int
    write: bool  # False: already held with this checksum, or the upload is no longer open
    state: str = "open"


class Hub:
    def __init__(self, db: Database, store: BlobStore, cfg: HubConfig, public_key: Ed25519PublicKey | None) -> None:
        self.db, self.store, self.cfg, self.public_key = db, store, cfg, public_key
        # Whole-object sha256 advanced while chunks arrive (over the contiguous prefix held), so
        # `complete` hashes only what is left; lost on restart, then `complete` re-reads everything.
        self._running: dict[str, tuple[int, Any]] = {}
        self._running_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._hasher = ThreadPoolExecutor(max_workers=2, thread_name_prefix="roadloop-hub-hash")
        self._complete_locks: dict[str, threading.Lock] = {}

    # -- uploads ---------------------------------------------------------------------------------
    def _upload(self, who: Principal, upload_id: str) -> dict[str, Any]:
        try:
            uuid.UUID(upload_id)
        except ValueError:
            raise RequestRefused(400, f"upload id {upload_id!r} is not a UUID") from None
        row = self.db.one("SELECT * FROM uploads WHERE id = ?", (upload_id,))
        if row is None:
            raise RequestRefused(404, f"upload {upload_id} not found")
        if not who.is_admin and row["vehicle"] != who.name:
            raise RequestRefused(403, f"upload {upload_id} belongs to another vehicle")
        return row

    def _status(self, row: dict[str, Any]) -> dict[str, Any]:
        have = [
            r["idx"] for r in self.db.query("SELECT idx FROM chunks WHERE upload_id = ? ORDER BY idx", (row["id"],))
        ]
        return {
            "upload_id": row["id"],
            "vehicle": row["vehicle"],
            "bag_name": row["bag_name"],
            "size": row["size"],
            "sha256": row["sha256"],
            "chunk_size": row["chunk_size"],
            "n_chunks": row["n_chunks"],
            "state": row["state"],
            "have": have if row["state"] == "open" else list(range(row["n_chunks"])),
            "tags": json.loads(row["tags"]),
            "priority": row["priority"],
        }

    def create_upload(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        if who.is_admin:
            raise RequestRefused(403, "uploads are made with a vehicle token")
        bag_name = _name(body.get("bag_name"), "bag name")
        sha = _sha(body.get("sha256"), "sha256")
        size = _int(body.get("size"), "size", 1024, self.cfg.max_upload_bytes)
        chunk_size = _int(body.get("chunk_size"), "chunk_size", MIN_CHUNK, self.cfg.max_chunk_bytes)
        priority = _int(body.get("priority", 0), "priority", -1000, 1000)
        tags = body.get("tags", [])
        if not isinstance(tags, list) or len(tags) > 32:
            raise RequestRefused(400, "tags must be a list of at most 32 names")
        tags = sorted({_name(t, "tag") for t in tags})
        with self.db.transaction():
            row = self.db.one(
                "SELECT * FROM uploads WHERE vehicle = ? AND bag_name = ? AND sha256 = ? ORDER BY created DESC",
                (who.name, bag_name, sha),
            )
            same = row is not None and row["size"] == size
            if same and row is not None and (row["state"] == "complete" or row["chunk_size"] == chunk_size):
                return self._status(row)  # a bridge that lost its upload id resumes the same upload
            stored = self.store.has_bag(sha) and self._object(sha) is not None
            open_now = self.db.one(
                "SELECT COUNT(*) AS n FROM uploads WHERE vehicle = ? AND state = 'open'", (who.name,)
            )
            if not stored and open_now is not None and int(open_now["n"]) >= self.cfg.max_open_uploads:
                raise RequestRefused(
                    429, f"{who.name} already has {open_now['n']} unfinished uploads; finish them first"
                )
            upload_id = str(uuid.uuid4())
            state = "complete" if stored else "open"
            now = time.time()
            self.db.execute(
                "INSERT INTO uploads (id, vehicle, bag_name, size, sha256, chunk_size, n_chunks, priority, tags, state,"
                " created, completed) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    upload_id, who.name, bag_name, size, sha, chunk_size, chunk_count(size, chunk_size), priority,
                    json.dumps(tags), state, now, now if stored else None,
                ),
            )  # fmt: skip
            if stored:  # same content already held: acknowledged, stored once
                self._add_catalog_entry(who.name, bag_name, sha, priority, tags, upload_id)
            row = self.db.one("SELECT * FROM uploads WHERE id = ?", (upload_id,))
        assert row is not None
        out = self._status(row)
        out["deduplicated"] = stored
        return out

    def upload_status(self, who: Principal, upload_id: str) -> dict[str, Any]:
        return self._status(self._upload(who, upload_id))

    def chunk_slot(self, who: Principal, upload_id: str, idx: int, sha: str) -> ChunkSlot:
        """Check a chunk PUT before its body is read: where it goes, or why it is not needed."""
        row = self._upload(who, upload_id)
        sha = _sha(sha, "X-Chunk-Sha256")
        if row["state"] != "open":
            return ChunkSlot(row, idx, sha, 0, 0, write=False, state=row["state"])
        if not 0 <= idx < row["n_chunks"]:
            raise RequestRefused(400, f"chunk index {idx} outside [0, {row['n_chunks']})")
        offset, length = chunk_range(idx, row["size"], row["chunk_size"])
        held = self.db.one("SELECT sha256 FROM chunks WHERE upload_id = ? AND idx = ?", (upload_id, idx))
        # A chunk already held with this checksum is never overwritten (its body is read and dropped).
        return ChunkSlot(row, idx, sha, offset, length, write=held is None or held["sha256"] != sha)

    def finish_chunk(self, slot: ChunkSlot, actual_sha: str, received: int) -> dict[str, Any]:
        """Record a chunk whose body was written at its offset (or judge why not)."""
        upload_id, idx = slot.row["id"], slot.idx
        if slot.state != "open":
            self._event(upload_id, idx, "after-complete")
            return {"stored": False, "state": slot.state}
        if received != slot.length:
            raise RequestRefused(400, f"chunk {idx} must be {slot.length} bytes, got {received}")
        if actual_sha != slot.sha:
            self._event(upload_id, idx, "bad-sha256")
            raise RequestRefused(422, f"chunk {idx}: body does not match its X-Chunk-Sha256")
        if not slot.write:
            self._event(upload_id, idx, "duplicate")
            return {"stored": False, "state": "open"}
        with self.db.transaction(durable=False):  # see BlobStore.write_chunk: `complete` re-checks everything
            self.db.execute("DELETE FROM chunks WHERE upload_id = ? AND idx = ?", (upload_id, idx))
            self.db.execute(
                "INSERT INTO chunks (upload_id, idx, sha256, size) VALUES (?, ?, ?, ?)",
                (upload_id, idx, slot.sha, slot.length),
            )
            self.db.execute(
                "INSERT INTO chunk_events (upload_id, idx, outcome, at) VALUES (?, ?, 'stored', ?)",
                (upload_id, idx, time.time()),
            )
        with self._locks_guard:
            self._running_locks.setdefault(upload_id, threading.Lock())
        self._hasher.submit(self._advance_hash, slot.row)  # off the request path: the ack does not wait for it
        return {"stored": True, "state": "open"}

    def put_chunk(self, who: Principal, upload_id: str, idx: int, sha: str, data: bytes) -> dict[str, Any]:
        """One whole chunk at once (the HTTP layer streams instead: chunk_slot, write, finish_chunk)."""
        slot = self.chunk_slot(who, upload_id, idx, sha)
        actual = hashlib.sha256(data).hexdigest()
        if slot.write and len(data) == slot.length and actual == slot.sha:
            self.store.write_chunk(upload_id, slot.offset, data)
        return self.finish_chunk(slot, actual, len(data))

    def _advance_hash(self, row: dict[str, Any]) -> None:
        """Extend the whole-object sha256 over the contiguous prefix of held chunks (background worker)."""
        upload_id, size, chunk = row["id"], int(row["size"]), int(row["chunk_size"])
        with self._locks_guard:
            lock = self._running_locks.get(upload_id)
        if lock is None:
            return  # completed meanwhile
        with lock:
            if upload_id not in self._running_locks:
                return
            covered, digest = self._running.get(upload_id, (0, hashlib.sha256()))
            try:
                while covered < size:
                    idx = covered // chunk
                    if self.db.one("SELECT idx FROM chunks WHERE upload_id = ? AND idx = ?", (upload_id, idx)) is None:
                        break
                    off, length = chunk_range(idx, size, chunk)
                    digest.update(self.store.read_part(upload_id, off, length))
                    covered += length
            except (OSError, HubError) as err:  # only an optimisation: `complete` hashes what is left
                log.warning("prefix hash of upload %s stopped: %s", upload_id, err)
            self._running[upload_id] = (covered, digest)

    def _event(self, upload_id: str, idx: int, outcome: str) -> None:
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO chunk_events (upload_id, idx, outcome, at) VALUES (?, ?, ?, ?)",
                (upload_id, idx, outcome, time.time()),
            )

    def complete(self, who: Principal, upload_id: str) -> dict[str, Any]:
        self._upload(who, upload_id)  # refuse strangers before waiting on the lock
        with self._locks_guard:
            lock = self._complete_locks.setdefault(upload_id, threading.Lock())
        with lock:  # a client retrying a slow complete waits for the first one instead of racing it
            return self._complete(who, upload_id)

    def chunk_aborted(self, who: Principal, upload_id: str, idx: int) -> None:
        """A chunk body that ended early (client gone mid-chunk): logged, nothing stored."""
        self._upload(who, upload_id)
        self._event(upload_id, idx, "aborted")

    def _complete(self, who: Principal, upload_id: str) -> dict[str, Any]:
        row = self._upload(who, upload_id)
        if row["state"] == "complete":
            return self._status(row) | {"bag": self.bag_record(row["sha256"])}
        if row["state"] != "open":
            raise RequestRefused(409, f"upload {upload_id} was {row['state']}; create a new one")
        status = self._status(row)
        missing = sorted(set(range(row["n_chunks"])) - set(status["have"]))
        if missing:
            raise RequestRefused(409, f"upload {upload_id}: {len(missing)} chunk(s) missing, first {missing[0]}")
        with self._locks_guard:
            lock = self._running_locks.pop(upload_id, threading.Lock())
        with lock:
            covered, digest = self._running.pop(upload_id, (0, hashlib.sha256()))
        actual = self.store.hash_part(upload_id, row["size"], covered, digest)
        if actual != row["sha256"]:
            with self.db.transaction():  # chunks agree with their own hashes but not the whole: start over
                self.db.execute("DELETE FROM chunks WHERE upload_id = ?", (upload_id,))
            self.store.drop_part(upload_id)
            raise RequestRefused(
                409, f"upload {upload_id}: whole sha256 {actual[:12]}… != declared {row['sha256'][:12]}…"
            )
        try:
            bag_dir = self.store.ingest_bag(upload_id, actual)
        except StoreError as err:
            raise RequestRefused(422, str(err)) from err
        with self.db.transaction():
            if self._object(actual) is None:
                self._add_object(actual, row["size"], bag_dir)
            self._add_catalog_entry(
                row["vehicle"], row["bag_name"], actual, row["priority"], json.loads(row["tags"]), upload_id
            )
            self.db.execute(
                "UPDATE uploads SET state = 'complete', completed = ? WHERE id = ?", (time.time(), upload_id)
            )
            self.db.execute("DELETE FROM chunks WHERE upload_id = ?", (upload_id,))
        row = self._upload(who, upload_id)
        return self._status(row) | {"bag": self.bag_record(actual)}

    def collect_garbage(self, older_than_s: float) -> list[str]:
        """Drop open uploads untouched for `older_than_s` (their part files and chunk records)."""
        cutoff = time.time() - older_than_s
        stale = self.db.query(
            "SELECT u.id FROM uploads u WHERE u.state = 'open' AND u.created < ? AND NOT EXISTS"
            " (SELECT 1 FROM chunk_events e WHERE e.upload_id = u.id AND e.at >= ?)",
            (cutoff, cutoff),
        )
        ids = [str(r["id"]) for r in stale]
        for upload_id in ids:
            with self.db.transaction():
                self.db.execute("DELETE FROM chunks WHERE upload_id = ?", (upload_id,))
                self.db.execute("UPDATE uploads SET state = 'abandoned' WHERE id = ?", (upload_id,))
            self.store.drop_part(upload_id)
        return ids

    def chunk_events(self, who: Principal, upload_id: str) -> list[dict[str, Any]]:
        if not who.is_admin:
            raise RequestRefused(403, "chunk events are for admins")
        return self.db.query(
            "SELECT idx, outcome, at FROM chunk_events WHERE upload_id = ? ORDER BY at, idx", (upload_id,)
        )

    def uploads(self, who: Principal) -> list[dict[str, Any]]:
        sql = "SELECT id, vehicle, bag_name, sha256, size, state, created, completed FROM uploads"
        if who.is_admin:
            return self.db.query(sql + " ORDER BY created")
        return self.db.query(sql + " WHERE vehicle = ? ORDER BY created", (who.name,))

    # -- catalog ---------------------------------------------------------------------------------
    def _object(self, sha: str) -> dict[str, Any] | None:
        return self.db.one("SELECT * FROM objects WHERE sha256 = ?", (sha,))

    def _add_object(self, sha: str, size: int, bag_dir: Path) -> None:
        try:
            with open_bag(bag_dir) as bag:
                info = bag.info
            start, end, count, storage = info.start_ns, info.end_ns, info.message_count, info.storage
            topics = [(t.name, t.type, t.message_count) for t in info.topics]
            readable, error, custom = 1, "", dict(info.custom_data)
        except RoadloopError as err:  # keep the bytes (nothing recorded is lost), say why it cannot be read
            start = end = count = 0
            storage, topics, readable, error, custom = "", [], 0, str(err), {}
        self.db.execute(
            "INSERT INTO objects (sha256, size, storage, start_ns, end_ns, message_count, readable, error, custom_data,"
            " stored) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
            (sha, size, storage, start, end, count, readable, error, json.dumps(custom), time.time()),
        )
        for name, typename, n in topics:
            self.db.execute(
                "INSERT INTO topics (sha256, topic, type, count) VALUES (?, ?, ?, ?)", (sha, name, typename, n)
            )

    def _add_catalog_entry(
        self, vehicle: str, bag_name: str, sha: str, priority: int, tags: list[str], upload_id: str
    ) -> None:
        obj = self._object(sha)
        custom = json.loads(obj["custom_data"]) if obj else {}
        if str(custom.get("roadloop.intervention", "")).lower() == "true":
            tags = sorted(set(tags) | {"disengagement"})
        self.db.execute(
            "INSERT INTO bags (vehicle, bag_name, sha256, priority, tags, arrived, upload_id)"
            " VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT (vehicle, bag_name, sha256) DO NOTHING",
            (vehicle, bag_name, sha, priority, json.dumps(tags), time.time(), upload_id),
        )

    def _topics(self, sha: str) -> list[dict[str, Any]]:
        return self.db.query("SELECT topic, type, count FROM topics WHERE sha256 = ? ORDER BY topic", (sha,))

    def bag_record(self, sha: str) -> dict[str, Any] | None:
        obj = self._object(sha)
        if obj is None:
            return None
        topics = self._topics(sha)
        return {
            "sha256": sha,
            "size": obj["size"],
            "storage": obj["storage"],
            "start_ns": obj["start_ns"],
            "end_ns": obj["end_ns"],
            "message_count": obj["message_count"],
            "readable": bool(obj["readable"]),
            "error": obj["error"],
            "custom_data": json.loads(obj["custom_data"]),
            "topics": topics,
            "path": str(self.store.bag_dir(sha)),
        }

    def list_bags(
        self, who: Principal | None, vehicle: str | None = None, tag: str | None = None
    ) -> list[dict[str, Any]]:
        """Catalog entries; a vehicle sees only its own, an admin (or the local CLI, who=None) all."""
        sql = (
            "SELECT b.vehicle, b.bag_name, b.sha256, b.priority, b.tags, b.arrived, o.size, o.start_ns, o.end_ns,"
            " o.message_count, o.readable, o.error FROM bags b JOIN objects o ON o.sha256 = b.sha256"
        )
        params: list[Any] = []
        if who is not None and not who.is_admin:
            vehicle = who.name
        if vehicle:
            sql += " WHERE b.vehicle = ?"
            params.append(vehicle)
        rows = self.db.query(sql + " ORDER BY b.arrived, b.bag_name", params)
        for r in rows:
            r["tags"] = json.loads(r["tags"])
            r["readable"] = bool(r["readable"])
            r["topics"] = self.db.query(
                "SELECT topic, type, count FROM topics WHERE sha256 = ? ORDER BY topic", (r["sha256"],)
            )
        if tag:
            rows = [r for r in rows if tag in r["tags"]]
        return rows

    def get_bag(self, who: Principal, sha: str) -> dict[str, Any]:
        sha = _sha(sha, "bag sha256")
        owners = {r["vehicle"] for r in self.db.query("SELECT vehicle FROM bags WHERE sha256 = ?", (sha,))}
        if not owners:
            raise RequestRefused(404, f"bag {sha[:12]}… not found")
        if not who.is_admin and who.name not in owners:
            raise RequestRefused(403, f"bag {sha[:12]}… was uploaded by another vehicle")
        rec = self.bag_record(sha)
        assert rec is not None
        rec["uploads"] = self.db.query("SELECT vehicle, bag_name, tags, arrived FROM bags WHERE sha256 = ?", (sha,))
        if not who.is_admin:
            rec["uploads"] = [u for u in rec["uploads"] if u["vehicle"] == who.name]
        return rec

    # -- registry --------------------------------------------------------------------------------
    def _channel(self, channel: str) -> str:
        if not CHANNEL_RE.match(channel) or channel not in self.cfg.channels:
            raise RequestRefused(404, f"channel {channel!r} unknown; channels: {', '.join(self.cfg.channels)}")
        return channel

    def publish(self, who: Principal, channel: str, tar_path: Path) -> dict[str, Any]:
        if not who.is_admin:
            raise RequestRefused(403, "publishing needs the admin token")
        self._channel(channel)
        if self.public_key is None:
            raise RequestRefused(503, "the hub has no public key configured (hub.yaml public_key / --public-key)")
        staged = self.store.staging_dir()
        try:
            try:
                self.store.unpack_bundle(tar_path, staged)
                manifest = verify_bundle(staged, self.public_key)
            except RoadloopError as err:
                raise RequestRefused(422, f"bundle refused: {err}".replace(str(staged), "bundle")) from err
            bundle_id = hashlib.sha256((staged / MANIFEST_FILE).read_bytes()).hexdigest()
            manifest_text = (staged / MANIFEST_FILE).read_text()
            self.store.commit_bundle(staged, bundle_id)
        finally:
            shutil.rmtree(staged, ignore_errors=True)
        with self.db.transaction():
            self.db.execute(
                "INSERT INTO bundles (id, name, version, manifest, stored) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (id) DO NOTHING",
                (bundle_id, manifest.name, manifest.version, manifest_text, time.time()),
            )
            self._append_release(channel, bundle_id, "publish", who.name)
        return self.current(channel)

    def _append_release(self, channel: str, bundle_id: str, action: str, principal: str) -> None:
        last = self.db.one("SELECT MAX(seq) AS seq FROM releases WHERE channel = ?", (channel,))
        seq = int(last["seq"]) + 1 if last and last["seq"] is not None else 1
        self.db.execute(
            "INSERT INTO releases (channel, seq, bundle_id, action, principal, at) VALUES (?, ?, ?, ?, ?, ?)",
            (channel, seq, bundle_id, action, principal, time.time()),
        )

    def _release_view(self, channel: str, row: dict[str, Any]) -> dict[str, Any]:
        bundle = self.db.one("SELECT name, version, manifest FROM bundles WHERE id = ?", (row["bundle_id"],))
        assert bundle is not None
        bdir = self.store.bundle_dir(row["bundle_id"])
        files = {p.name: p.stat().st_size for p in sorted(bdir.iterdir()) if p.is_file()}
        return {
            "channel": channel,
            "seq": row["seq"],
            "action": row["action"],
            "at": row["at"],
            "bundle_id": row["bundle_id"],
            "name": bundle["name"],
            "version": bundle["version"],
            "files": files,
            "manifest": json.loads(bundle["manifest"]),  # for display; the vehicle verifies the downloaded bytes
        }

    def current(self, channel: str) -> dict[str, Any]:
        self._channel(channel)
        row = self.db.one("SELECT * FROM releases WHERE channel = ? ORDER BY seq DESC LIMIT 1", (channel,))
        if row is None:
            raise RequestRefused(404, f"channel {channel} has no release yet")
        return self._release_view(channel, row)

    def history(self, channel: str) -> list[dict[str, Any]]:
        self._channel(channel)
        rows = self.db.query("SELECT * FROM releases WHERE channel = ? ORDER BY seq", (channel,))
        return [self._release_view(channel, r) for r in rows]

    def rollback(self, who: Principal, channel: str, to_version: int | None) -> dict[str, Any]:
        """Make an earlier release current again (recorded as a new history entry, never rewriting it)."""
        if not who.is_admin:
            raise RequestRefused(403, "rollback needs the admin token")
        hist = self.history(channel)
        if not hist:
            raise RequestRefused(404, f"channel {channel} has no release yet")
        current = hist[-1]
        earlier = [h for h in hist if h["bundle_id"] != current["bundle_id"]]
        if to_version is not None:
            earlier = [h for h in earlier if h["version"] == to_version]
        if not earlier:
            raise RequestRefused(409, f"channel {channel}: no earlier release to roll back to")
        with self.db.transaction():
            self._append_release(channel, earlier[-1]["bundle_id"], "rollback", who.name)
        return self.current(channel)

    def bundle_file(self, bundle_id: str, name: str) -> Path:
        _sha(bundle_id, "bundle id")
        _name(name, "file name")
        path = self.store.bundle_dir(bundle_id) / name
        if self.db.one("SELECT id FROM bundles WHERE id = ?", (bundle_id,)) is None or not path.is_file():
            raise RequestRefused(404, f"bundle {bundle_id[:12]}… has no file {name}")
        return path
