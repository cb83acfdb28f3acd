"""Resumable uploads: create (resume, dedup), chunk bookkeeping, completion, garbage collection.

Every method takes the authenticated `Principal` and enforces who may do what (an upload is
its vehicle's; admins read all; only vehicles upload); refusals are `RequestRefused(status,
detail)`. The upload and bag catalogs are one backend, so one transaction covers both.
"""

from __future__ import annotations

import hashlib
import threading
import time
import uuid
from dataclasses import dataclass
from typing import Any

from roadloop_core.contract.wire import ABANDONED, COMPLETE, MIN_CHUNK_BYTES, OPEN, chunk_count, chunk_range
from roadloop_hub.auth import Principal
from roadloop_hub.bags import BagService
from roadloop_hub.catalog import UploadCatalog, UploadRecord
from roadloop_hub.config import HubConfig
from roadloop_hub.errors import RequestRefused, StoreError
from roadloop_hub.prefix_hash import PrefixHasher
from roadloop_hub.request_fields import int_field, name_field, sha256_field
from roadloop_hub.store import BlobStore

__all__ = ["ChunkSlot", "UploadService"]

MIN_UPLOAD_BYTES = 1024  # two tar end blocks: no tar stream is shorter
MAX_TAGS = 32


@dataclass(frozen=True)
class ChunkSlot:
    """Where a chunk PUT's body goes, decided before the body is read."""

    upload: UploadRecord
    idx: int
    sha: str  # as declared by the vehicle
    offset: int
    length: int
    write: bool  # False: already held with this checksum, or the upload is no longer open
    state: str = OPEN


def _resumable(u: UploadRecord, chunk_size: int) -> bool:
    """A create with an existing upload's key gets that upload: done, or still open with the same chunking.

    An abandoned one (hub gc) is not resumed: the bridge that comes back gets a new upload.
    """
    return u.state == COMPLETE or (u.state == OPEN and u.chunk_size == chunk_size)


class UploadService:
    def __init__(self, catalog: UploadCatalog, bags: BagService, store: BlobStore, cfg: HubConfig) -> None:
        self.catalog, self.bags, self.store, self.cfg = catalog, bags, store, cfg
        self.hasher = PrefixHasher(catalog, store)
        self._guard = threading.Lock()
        self._complete_locks: dict[str, threading.Lock] = {}

    def close(self) -> None:
        self.hasher.close()

    # -- reading ---------------------------------------------------------------------------------
    def _owned(self, who: Principal, upload_id: str) -> UploadRecord:
        try:
            uuid.UUID(upload_id)
        except ValueError:
            raise RequestRefused(400, f"upload id {upload_id!r} is not a UUID") from None
        upload = self.catalog.get_upload(upload_id)
        if upload is None:
            raise RequestRefused(404, f"upload {upload_id} not found")
        if not who.is_admin and upload.vehicle != who.name:
            raise RequestRefused(403, f"upload {upload_id} belongs to another vehicle")
        return upload

    def _status(self, u: UploadRecord) -> dict[str, Any]:
        return {
            "upload_id": u.id,
            "vehicle": u.vehicle,
            "bag_name": u.bag_name,
            "size": u.size,
            "sha256": u.sha256,
            "chunk_size": u.chunk_size,
            "n_chunks": u.n_chunks,
            "state": u.state,
            "have": self.catalog.held_chunks(u.id) if u.state == OPEN else list(range(u.n_chunks)),
            "tags": list(u.tags),
            "priority": u.priority,
        }

    def status(self, who: Principal, upload_id: str) -> dict[str, Any]:
        return self._status(self._owned(who, upload_id))

    def list_uploads(self, who: Principal) -> list[dict[str, Any]]:
        """The vehicle's own uploads (an admin: all), oldest first."""
        return [
            {"id": u.id, "vehicle": u.vehicle, "bag_name": u.bag_name, "sha256": u.sha256, "size": u.size,
             "state": u.state, "created": u.created, "completed": u.completed}
            for u in self.catalog.list_uploads(None if who.is_admin else who.name)
        ]  # fmt: skip

    def events(self, who: Principal, upload_id: str) -> list[dict[str, Any]]:
        if not who.is_admin:
            raise RequestRefused(403, "chunk events are for admins")
        return [{"idx": e.idx, "outcome": e.outcome, "at": e.at} for e in self.catalog.chunk_events(upload_id)]

    # -- create ----------------------------------------------------------------------------------
    def create(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """A new upload, the same one again (same vehicle, name and sha256), or at once complete (dedup)."""
        if who.is_admin:
            raise RequestRefused(403, "uploads are made with a vehicle token")
        bag_name = name_field(body.get("bag_name"), "bag name")
        sha = sha256_field(body.get("sha256"), "sha256")
        size = int_field(body.get("size"), "size", MIN_UPLOAD_BYTES, self.cfg.max_upload_bytes)
        chunk_size = int_field(body.get("chunk_size"), "chunk_size", MIN_CHUNK_BYTES, self.cfg.max_chunk_bytes)
        priority = int_field(body.get("priority", 0), "priority", -1000, 1000)
        tags = body.get("tags", [])
        if not isinstance(tags, list) or len(tags) > MAX_TAGS:
            raise RequestRefused(400, f"tags must be a list of at most {MAX_TAGS} names")
        tags = sorted({name_field(t, "tag") for t in tags})
        with self.catalog.transaction():
            u = self.catalog.find_upload(who.name, bag_name, sha)
            if u is not None and u.size == size and _resumable(u, chunk_size):
                return self._status(u)  # a bridge that lost its upload id resumes the same upload
            stored = self.bags.is_stored(sha)
            open_now = self.catalog.count_open_uploads(who.name)
            if not stored and open_now >= self.cfg.max_open_uploads:
                raise RequestRefused(429, f"{who.name} already has {open_now} unfinished uploads; finish them first")
            now = time.time()
            new = UploadRecord(
                str(uuid.uuid4()), who.name, bag_name, size, sha, chunk_size, chunk_count(size, chunk_size), priority,
                tuple(tags), COMPLETE if stored else OPEN, now, now if stored else None,
            )  # fmt: skip
            self.catalog.add_upload(new)
            if stored:  # same content already held: acknowledged, stored once
                self.bags.add_entry(who.name, bag_name, sha, priority, tags, new.id)
        return self._status(new) | {"deduplicated": stored}

    # -- chunks ----------------------------------------------------------------------------------
    def chunk_slot(self, who: Principal, upload_id: str, idx: int, sha: str) -> ChunkSlot:
        """Check a chunk PUT before its body is read: where it goes, or why it is not needed."""
        u = self._owned(who, upload_id)
        sha = sha256_field(sha, "X-Chunk-Sha256")
        if u.state != OPEN:
            return ChunkSlot(u, idx, sha, 0, 0, write=False, state=u.state)
        if not 0 <= idx < u.n_chunks:
            raise RequestRefused(400, f"chunk index {idx} outside [0, {u.n_chunks})")
        offset, length = chunk_range(idx, u.size, u.chunk_size)
        held = self.catalog.held_chunk_sha256(upload_id, idx)
        # A chunk already held with this checksum is never overwritten (its body is read and dropped).
        return ChunkSlot(u, idx, sha, offset, length, write=held != sha)

    def finish_chunk(self, slot: ChunkSlot, actual_sha: str, received: int) -> dict[str, Any]:
        """Record a chunk whose body was written at its offset (or judge why not)."""
        upload_id, idx = slot.upload.id, slot.idx
        if slot.state != OPEN:
            self._event(upload_id, idx, "after-complete")
            return {"stored": False, "state": slot.state}
        if received != slot.length:
            raise RequestRefused(400, f"chunk {idx} must be {slot.length} bytes, got {received}")
        if actual_sha != slot.sha:
            self._event(upload_id, idx, "bad-sha256")
            raise RequestRefused(422, f"chunk {idx}: body does not match its X-Chunk-Sha256")
        if not slot.write:
            self._event(upload_id, idx, "duplicate")
            return {"stored": False, "state": OPEN}
        self.catalog.record_chunk(upload_id, idx, slot.sha, slot.length, time.time())
        self.hasher.chunk_held(slot.upload)  # the ack does not wait for it
        return {"stored": True, "state": OPEN}

    def put_chunk(self, who: Principal, upload_id: str, idx: int, sha: str, data: bytes) -> dict[str, Any]:
        """One whole chunk at once (the HTTP layer streams instead: chunk_slot, write, finish_chunk)."""
        slot = self.chunk_slot(who, upload_id, idx, sha)
        actual = hashlib.sha256(data).hexdigest()
        if slot.write and len(data) == slot.length and actual == slot.sha:
            self.store.write_chunk(upload_id, slot.offset, data)
        return self.finish_chunk(slot, actual, len(data))

    def chunk_aborted(self, who: Principal, upload_id: str, idx: int) -> None:
        """A chunk body that ended early (client gone mid-chunk): logged, nothing stored."""
        self._owned(who, upload_id)
        self._event(upload_id, idx, "aborted")

    def _event(self, upload_id: str, idx: int, outcome: str) -> None:
        with self.catalog.transaction():
            self.catalog.add_chunk_event(upload_id, idx, outcome, time.time())

    # -- complete --------------------------------------------------------------------------------
    def complete(self, who: Principal, upload_id: str) -> dict[str, Any]:
        """Check the whole sha256, store the bag folder, catalog it; answers after all of it is durable."""
        self._owned(who, upload_id)  # refuse strangers before waiting on the lock
        with self._guard:
            lock = self._complete_locks.setdefault(upload_id, threading.Lock())
        with lock:  # a client retrying a slow complete waits for the first one instead of racing it
            return self._complete(who, upload_id)

    def _complete(self, who: Principal, upload_id: str) -> dict[str, Any]:
        u = self._owned(who, upload_id)
        if u.state == COMPLETE:
            return self._status(u) | {"bag": self.bags.record(u.sha256)}
        if u.state != OPEN:
            raise RequestRefused(409, f"upload {upload_id} was {u.state}; create a new one")
        missing = sorted(set(range(u.n_chunks)) - set(self.catalog.held_chunks(upload_id)))
        if missing:
            raise RequestRefused(409, f"upload {upload_id}: {len(missing)} chunk(s) missing, first {missing[0]}")
        covered, digest = self.hasher.take(upload_id)
        if self.store.has_bag(u.sha256) and not self.store.part_path(upload_id).exists():
            actual = u.sha256  # stored by this upload before a crash cut `complete` short: nothing left to check
        else:
            actual = self.store.hash_part(upload_id, u.size, covered, digest)
        if actual != u.sha256:
            with self.catalog.transaction():  # chunks agree with their own hashes but not the whole: start over
                self.catalog.drop_chunks(upload_id)
            self.store.drop_part(upload_id)
            raise RequestRefused(409, f"upload {upload_id}: whole sha256 {actual[:12]}… != declared {u.sha256[:12]}…")
        try:
            bag_dir = self.store.ingest_bag(upload_id, actual)
        except StoreError as err:
            raise RequestRefused(422, str(err)) from err
        self.bags.add_object(actual, u.size, bag_dir)  # reads the bag: outside the transaction below
        with self.catalog.transaction():
            self.bags.add_entry(u.vehicle, u.bag_name, actual, u.priority, u.tags, upload_id)
            self.catalog.set_upload_state(upload_id, COMPLETE, time.time())
            self.catalog.drop_chunks(upload_id)
        return self._status(self._owned(who, upload_id)) | {"bag": self.bags.record(actual)}

    # -- maintenance -----------------------------------------------------------------------------
    def collect_garbage(self, older_than_s: float) -> list[str]:
        """Mark open uploads untouched for `older_than_s` abandoned; drop their part files and chunk records."""
        ids = self.catalog.stale_uploads(time.time() - older_than_s)
        for upload_id in ids:
            with self.catalog.transaction():
                self.catalog.drop_chunks(upload_id)
                self.catalog.set_upload_state(upload_id, ABANDONED)
            self.hasher.take(upload_id)
            self.store.drop_part(upload_id)
        return ids
