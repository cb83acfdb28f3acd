"""Resumable uploads: create (resume, proof-of-possession dedup), chunk bookkeeping, completion, gc.

Every method takes the authenticated `Principal` and enforces who may do what (an upload is
its vehicle's; admins read all; only vehicles upload); refusals are `RequestRefused(status,
detail)`. The upload and bag catalogs are one backend, so one transaction covers both.

Integrity: a held chunk is immutable (a different body for it is refused before a byte is read,
and a new body is installed only after its sha256 matched, `store.ChunkFile`); `complete` hashes
every byte as stored, checks that it is the wire's tar and that its metadata parses at bounded
cost, then installs and catalogs it. A failure before the catalog commit leaves the upload open
with its chunks (retry `complete`) or, for an object the hub refuses, cleanly `failed`.

Pieces: an upload with `piece` carries one file of a recording still being written (`recordings`);
its tar must hold exactly that file, and it is stored like a bag but gets no catalog entry.

Ownership: every new upload carries a proof challenge (`wire.ProofChallenge`, random ranges of
the object); content the hub already holds from another vehicle is deduplicated onto this upload
only when the answer matches the stored bytes. The create answer and a refused proof are the same
whether or not the object exists, so knowing a sha256 and a size reveals nothing.
"""

from __future__ import annotations

import hashlib
import json
import threading
import time
import uuid
import zlib
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Any

from roadloop_core.contract.wire import (
    ABANDONED,
    COMPLETE,
    FAILED,
    MIN_CHUNK_BYTES,
    OPEN,
    ProofChallenge,
    chunk_count,
    chunk_range,
)
from roadloop_hub.auth import Principal
from roadloop_hub.bags import BagService, check_metadata, read_object
from roadloop_hub.catalog import UploadCatalog, UploadRecord
from roadloop_hub.config import HubConfig
from roadloop_hub.errors import RequestRefused, StoreError
from roadloop_hub.prefix_hash import PrefixHasher
from roadloop_hub.request_fields import int_field, name_field, piece_field, sha256_field
from roadloop_hub.store import BlobStore, ChunkFile, HeldObject

__all__ = ["PROOF_REFUSED", "ChunkSlot", "UploadService", "store_fault"]

MIN_UPLOAD_BYTES = 1024  # two tar end blocks: no tar stream is shorter
MAX_TAGS = 32
# One answer for every refused proof, whether the object exists or not.
PROOF_REFUSED = "proof of possession not accepted; send the chunks"
_STRIPES = 64  # locks serialising the install of chunk bodies (per upload, striped: bounded memory)


def store_fault(what: str, err: OSError) -> RequestRefused:
    """A fault of the hub's own disk (full, file too large, I/O error): 503, nothing acknowledged, the
    upload stays open with what it holds, so the same call succeeds once the fault is gone."""
    return RequestRefused(503, f"{what}: cannot store it now ({err.strerror or err}); retry")


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

    An abandoned or failed one is not resumed: the bridge that comes back gets a new upload.
    """
    return u.state == COMPLETE or (u.state == OPEN and u.chunk_size == chunk_size)


class UploadService:
    def __init__(self, catalog: UploadCatalog, bags: BagService, store: BlobStore, cfg: HubConfig) -> None:
        self.catalog, self.bags, self.store, self.cfg = catalog, bags, store, cfg
        self.hasher = PrefixHasher(catalog, store)
        self._guard = threading.Lock()
        self._complete_locks: dict[str, threading.Lock] = {}
        self._install_locks = [threading.Lock() for _ in range(_STRIPES)]

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
        out = {
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
        if u.piece:
            out["piece"] = u.piece
        if u.state == OPEN:
            challenge = self.catalog.get_challenge(u.id)
            if challenge is not None:
                out["proof"] = json.loads(challenge)
        if u.state == FAILED:
            out["error"] = u.error
        return out

    def status(self, who: Principal, upload_id: str) -> dict[str, Any]:
        return self._status(self._owned(who, upload_id))

    def list_uploads(self, who: Principal) -> list[dict[str, Any]]:
        """The vehicle's own uploads (an admin: all), oldest first."""
        return [
            {"id": u.id, "vehicle": u.vehicle, "bag_name": u.bag_name, "sha256": u.sha256, "size": u.size,
             "state": u.state, "created": u.created, "completed": u.completed, "error": u.error, "piece": u.piece}
            for u in self.catalog.list_uploads(None if who.is_admin else who.name)
        ]  # fmt: skip

    def events(self, who: Principal, upload_id: str) -> list[dict[str, Any]]:
        if not who.is_admin:
            raise RequestRefused(403, "chunk events are for admins")
        return [{"idx": e.idx, "outcome": e.outcome, "at": e.at} for e in self.catalog.chunk_events(upload_id)]

    # -- create ----------------------------------------------------------------------------------
    def create(self, who: Principal, body: dict[str, Any]) -> dict[str, Any]:
        """A new upload (with a proof challenge), the same one again (same vehicle, name and sha256), or at
        once complete when this vehicle already holds an entry for that content (another name for it)."""
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
        piece = piece_field(body.get("piece", ""))
        with self.catalog.transaction():
            u = self.catalog.find_upload(who.name, bag_name, sha)
            if u is not None and u.size == size and u.piece == piece and _resumable(u, chunk_size):
                return self._status(u)  # a bridge that lost its upload id resumes the same upload
            # Only the vehicle's own content short-cuts the upload: whether anybody else's exists must not show.
            own = self.bags.owns(who.name, sha)
            open_now = self.catalog.count_open_uploads(who.name)
            if not own and open_now >= self.cfg.max_open_uploads:
                raise RequestRefused(429, f"{who.name} already has {open_now} unfinished uploads; finish them first")
            now = time.time()
            new = UploadRecord(
                str(uuid.uuid4()), who.name, bag_name, size, sha, chunk_size, chunk_count(size, chunk_size), priority,
                tuple(tags), COMPLETE if own else OPEN, now, now if own else None, piece=piece,
            )  # fmt: skip
            self.catalog.add_upload(new)
            if own and not piece:
                self.bags.add_entry(who.name, bag_name, sha, priority, tags, new.id)
            else:
                self.catalog.add_challenge(new.id, json.dumps(ProofChallenge.random(size).to_json()))
        return self._status(new) | {"deduplicated": own}

    def prove(self, who: Principal, upload_id: str, body: dict[str, Any]) -> dict[str, Any]:
        """Answer the upload's proof challenge: complete at once if the hub holds that content and the answer
        matches its bytes; otherwise 409 with one fixed message (the chunks are needed). One answer per upload."""
        u = self._owned(who, upload_id)
        if u.state == COMPLETE:
            return self._status(u) | {"bag": self.bags.record(u.sha256)}
        if u.state != OPEN:
            raise RequestRefused(409, f"upload {upload_id} was {u.state}; create a new one")
        digests = body.get("sha256")
        if not isinstance(digests, list) or len(digests) > 64 or not all(isinstance(d, str) for d in digests):
            raise RequestRefused(400, 'a proof is {"sha256": [hex digest per challenged range]}')
        raw = self.catalog.take_challenge(upload_id)
        accepted = raw is not None and self._proof_matches(u, ProofChallenge.from_json(json.loads(raw)), digests)
        if not accepted:
            self._event(upload_id, -1, "proof-refused")
            raise RequestRefused(409, PROOF_REFUSED)
        with self.catalog.transaction():
            if not u.piece:  # a piece becomes a bag only with its recording (`recordings`)
                self.bags.add_entry(u.vehicle, u.bag_name, u.sha256, u.priority, u.tags, upload_id)
            self.catalog.set_upload_state(upload_id, COMPLETE, time.time())
            self.catalog.drop_chunks(upload_id)
            self.catalog.add_chunk_event(upload_id, -1, "proof-accepted", time.time())
        self.hasher.take(upload_id)
        self.store.drop_upload(upload_id)
        return self._status(self._owned(who, upload_id)) | {"bag": self.bags.record(u.sha256), "deduplicated": True}

    def _proof_matches(self, u: UploadRecord, challenge: ProofChallenge, digests: list[str]) -> bool:
        if not self.bags.is_stored(u.sha256):
            return False
        obj = self.bags.catalog.get_object(u.sha256)
        if obj is None or obj.size != u.size:
            return False
        try:
            return challenge.accepts(self.store.read_bag(u.sha256), digests)
        except (OSError, ValueError):
            return False

    # -- chunks ----------------------------------------------------------------------------------
    def chunk_slot(self, who: Principal, upload_id: str, idx: int, sha: str) -> ChunkSlot:
        """Check a chunk PUT before its body is read: where it goes, or why it is not needed or refused."""
        u = self._owned(who, upload_id)
        sha = sha256_field(sha, "X-Chunk-Sha256")
        if u.state != OPEN:
            return ChunkSlot(u, idx, sha, 0, 0, write=False, state=u.state)
        if not 0 <= idx < u.n_chunks:
            raise RequestRefused(400, f"chunk index {idx} outside [0, {u.n_chunks})")
        offset, length = chunk_range(idx, u.size, u.chunk_size)
        held = self.catalog.held_chunk_sha256(upload_id, idx)
        if held is not None and held != sha:  # refused before a byte of the body is read
            self._event(upload_id, idx, "conflict")
            raise RequestRefused(409, f"chunk {idx} is already held with another sha256; held chunks never change")
        # A chunk already held with this checksum: its body is read, checked and dropped.
        return ChunkSlot(u, idx, sha, offset, length, write=held is None)

    def body_for(self, slot: ChunkSlot) -> ChunkFile | nullcontext[None]:
        """Where the body of `slot` goes while it streams in: a temp file, or nowhere (write=False).
        Writing it may fail like any write (a full disk): `store_fault` makes that a 503."""
        if not slot.write:
            return nullcontext(None)
        try:
            return self.store.new_chunk(slot.upload.id, slot.idx)
        except OSError as err:
            raise store_fault(f"chunk {slot.idx} of upload {slot.upload.id}", err) from err

    def finish_chunk(
        self, slot: ChunkSlot, actual_sha: str, received: int, body: ChunkFile | None = None
    ) -> dict[str, Any]:
        """Judge a chunk body that arrived whole; install and record it only if it matches and none is held."""
        upload_id, idx = slot.upload.id, slot.idx
        if slot.state != OPEN:
            self._event(upload_id, idx, "after-complete")
            return {"stored": False, "state": slot.state}
        if received != slot.length:
            raise RequestRefused(400, f"chunk {idx} must be {slot.length} bytes, got {received}")
        if actual_sha != slot.sha:
            self._event(upload_id, idx, "bad-sha256")
            raise RequestRefused(422, f"chunk {idx}: body does not match its X-Chunk-Sha256")
        if not slot.write or body is None:
            self._event(upload_id, idx, "duplicate")
            return {"stored": False, "state": OPEN}
        with self._install_locks[zlib.crc32(upload_id.encode()) % _STRIPES]:
            held = self.catalog.held_chunk_sha256(upload_id, idx)  # again: another PUT may have won meanwhile
            if held == slot.sha:
                self._event(upload_id, idx, "duplicate")
                return {"stored": False, "state": OPEN}
            if held is not None:
                self._event(upload_id, idx, "conflict")
                raise RequestRefused(409, f"chunk {idx} is already held with another sha256; held chunks never change")
            current = self.catalog.get_upload(upload_id)
            if current is None or current.state != OPEN:
                self._event(upload_id, idx, "after-complete")
                return {"stored": False, "state": current.state if current else ABANDONED}
            try:
                body.install()
            except OSError as err:  # the upload was reset or collected while this body streamed in
                detail = f"chunk {idx}: upload {upload_id} was reset meanwhile ({err.strerror}); send it again"
                raise RequestRefused(409, detail) from err
            self.catalog.record_chunk(upload_id, idx, slot.sha, slot.length, time.time())
        self.hasher.chunk_held(slot.upload)  # the ack does not wait for it
        return {"stored": True, "state": OPEN}

    def put_chunk(self, who: Principal, upload_id: str, idx: int, sha: str, data: bytes) -> dict[str, Any]:
        """One whole chunk at once (the HTTP layer streams into `body_for` instead, then `finish_chunk`)."""
        slot = self.chunk_slot(who, upload_id, idx, sha)
        with self.body_for(slot) as body:
            if body is not None and len(data) <= slot.length:
                try:
                    body.write(data)
                except OSError as err:
                    raise store_fault(f"chunk {idx} of upload {upload_id}", err) from err
            return self.finish_chunk(slot, hashlib.sha256(data).hexdigest(), len(data), body)

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
            try:
                return self._complete(who, upload_id)
            except OSError as err:  # any other fault of the hub's disk: the upload changes only by commits
                raise store_fault(f"upload {upload_id}", err) from err

    def _complete(self, who: Principal, upload_id: str) -> dict[str, Any]:
        u = self._owned(who, upload_id)
        if u.state == COMPLETE:
            self.store.drop_upload(upload_id)  # a hub killed after the commit left its chunks behind
            return self._status(u) | {"bag": self.bags.record(u.sha256)}
        if u.state == FAILED:
            raise RequestRefused(422, f"upload {upload_id} was refused: {u.error}")
        if u.state != OPEN:
            raise RequestRefused(409, f"upload {upload_id} was {u.state}; create a new one")
        held = self.catalog.held_chunks(upload_id)
        missing = sorted(set(range(u.n_chunks)) - set(held))
        if missing:
            raise RequestRefused(409, f"upload {upload_id}: {len(missing)} chunk(s) missing, first {missing[0]}")
        obj = self.store.held(upload_id, u.size, u.chunk_size)
        if lost := obj.missing(held):  # listed but gone or short (a power loss): start over
            self._reset(upload_id)
            raise RequestRefused(409, f"upload {upload_id}: {len(lost)} held chunk(s) lost on the hub; send again")
        covered, digest = self.hasher.take(upload_id)
        try:
            actual = obj.sha256(covered, digest)  # every byte as stored (held chunks never change)
        except (OSError, StoreError) as err:  # a chunk file vanished or shrank under us: start over
            self._reset(upload_id)
            detail = f"upload {upload_id}: a held chunk could not be read ({err}); send again"
            raise RequestRefused(409, detail) from err
        if actual != u.sha256:  # chunks agree with their own hashes but not the whole: start over
            self._reset(upload_id)
            raise RequestRefused(409, f"upload {upload_id}: whole sha256 {actual[:12]}… != declared {u.sha256[:12]}…")
        if not self.bags.is_stored(actual):
            self._store(u, obj)
        elif u.piece and (held_files := sorted(p.name for p in self.store.bag_dir(actual).iterdir())) != [u.piece]:
            detail = f"upload {upload_id}: a piece holds exactly its one file {u.piece!r}, not {held_files}"
            self._fail(upload_id, detail)
            raise RequestRefused(422, detail)
        with self.catalog.transaction():
            if not u.piece:  # a piece becomes a bag only with its recording (`recordings`)
                self.bags.add_entry(u.vehicle, u.bag_name, actual, u.priority, u.tags, upload_id)
            self.catalog.set_upload_state(upload_id, COMPLETE, time.time())
            self.catalog.drop_chunks(upload_id)
            self.catalog.take_challenge(upload_id)
        self.store.drop_upload(upload_id)
        return self._status(self._owned(who, upload_id)) | {"bag": self.bags.record(actual)}

    def _store(self, u: UploadRecord, obj: HeldObject) -> None:
        """Unpack, check and read the verified object outside any catalog transaction, then install and
        catalog it. A refused object fails the upload (422); anything else leaves it open for a retry."""
        what = f"upload {u.id}"
        try:
            work, members = self.store.unpack_upload(obj, u.sha256, what)
            try:
                if u.piece and [m.name for m in members] != [u.piece]:
                    got = [m.name for m in members][:4]
                    raise StoreError(f"{what}: a piece holds exactly its one file {u.piece!r}, not {got}")
                check_metadata(work, members, what)
            except BaseException:
                self.store.discard(work)
                raise
        except StoreError as err:  # the object is refused: the upload fails (422)
            self._fail(u.id, str(err))
            raise RequestRefused(422, str(err)) from err
        except OSError as err:  # the disk failed us while unpacking (full, EFBIG, EIO): open for a retry
            raise store_fault(what, err) from err
        try:
            stored = read_object(u.sha256, u.size, work)  # bounded: metadata checked above; never raises
            self.store.install_bag(work, u.sha256)
        except OSError as err:  # e.g. a full disk: nothing is acknowledged, the chunks stay for a retry
            self.store.discard(work)
            raise store_fault(what, err) from err
        except BaseException:
            self.store.discard(work)
            raise
        self.bags.add_object(stored)

    def _reset(self, upload_id: str) -> None:
        """Drop every held chunk (catalog first, so no stale digest or file is trusted afterwards)."""
        with self.catalog.transaction():
            self.catalog.drop_chunks(upload_id)
        self.hasher.take(upload_id)
        self.store.drop_upload(upload_id)

    def _fail(self, upload_id: str, reason: str) -> None:
        with self.catalog.transaction():
            self.catalog.drop_chunks(upload_id)
            self.catalog.take_challenge(upload_id)
            self.catalog.fail_upload(upload_id, reason)
        self.hasher.take(upload_id)
        self.store.drop_upload(upload_id)

    # -- maintenance -----------------------------------------------------------------------------
    def collect_garbage(self, older_than_s: float) -> list[str]:
        """Mark open uploads untouched for `older_than_s` abandoned; drop their chunks, and leftovers of crashes."""
        cutoff = time.time() - older_than_s
        ids = self.catalog.stale_uploads(cutoff)
        for upload_id in ids:
            with self.catalog.transaction():
                self.catalog.drop_chunks(upload_id)
                self.catalog.take_challenge(upload_id)
                self.catalog.set_upload_state(upload_id, ABANDONED)
            self.hasher.take(upload_id)
            self.store.drop_upload(upload_id)
        self._drop_finished()
        self.store.drop_leftovers(cutoff)
        return ids

    def recover(self) -> None:
        """What a killed hub left behind, dropped when a serving hub starts (before any request): chunk bodies
        in flight, half-unpacked objects, and the chunks of uploads that completed or failed just before."""
        self._drop_finished()
        self.store.drop_leftovers(time.time())

    def _drop_finished(self) -> None:
        for upload_id in self.store.upload_dirs():  # a crash between the catalog commit and the cleanup
            u = self.catalog.get_upload(upload_id)
            if u is None or u.state != OPEN:
                self.store.drop_upload(upload_id)
