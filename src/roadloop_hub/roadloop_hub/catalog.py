"""The hub's catalog interface: what the service needs to remember, with no SQL in it.

Four parts, one Protocol each: `UploadCatalog` (uploads in progress, their chunks and chunk
log), `BagCatalog` (stored objects, their topics, the per-vehicle bag entries), `ModelRegistry`
(verified bundles and each channel's release history) and `TokenCatalog` (hashed bearer
tokens). `Catalog` is all four plus what a backend as a whole offers (a name for
`/v1/health`, transactions, close). `sql_catalog.SqlCatalog` implements it on SQLite or
PostgreSQL; another backend implements these methods with the same meaning.

Records are plain frozen dataclasses; times are UNIX seconds (float), sizes bytes.
"""

from __future__ import annotations

from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any, Protocol

__all__ = [
    "BagCatalog",
    "BagEntry",
    "BundleRecord",
    "Catalog",
    "CatalogedBag",
    "ChunkEvent",
    "ModelRegistry",
    "Release",
    "StoredObject",
    "TokenCatalog",
    "TokenRecord",
    "TopicCount",
    "Transactional",
    "UploadCatalog",
    "UploadRecord",
]


# -- records ---------------------------------------------------------------------------------------
@dataclass(frozen=True)
class UploadRecord:
    id: str  # a UUID
    vehicle: str
    bag_name: str
    size: int  # of the tar stream
    sha256: str  # declared by the vehicle; checked at completion
    chunk_size: int
    n_chunks: int
    priority: int
    tags: tuple[str, ...]
    state: str  # wire.OPEN | wire.COMPLETE | wire.ABANDONED | wire.FAILED
    created: float
    completed: float | None = None
    error: str = ""  # why the hub refused the object (state FAILED)
    piece: str = ""  # a piece of recording `bag_name`: the one file this upload carries ("" = a whole bag)


@dataclass(frozen=True)
class ChunkEvent:
    idx: int
    # stored | duplicate | bad-sha256 | conflict | after-complete | aborted; proof-accepted | proof-refused (idx -1)
    outcome: str
    at: float


@dataclass(frozen=True)
class TopicCount:
    topic: str
    type: str
    count: int


@dataclass(frozen=True)
class StoredObject:
    """One stored bag folder (content-addressed by the sha256 of its tar stream) and what was read from it."""

    sha256: str
    size: int
    storage: str  # mcap | sqlite3 | "" when unreadable
    start_ns: int
    end_ns: int
    message_count: int
    readable: bool
    error: str  # why it cannot be read ("" when readable)
    custom_data: dict[str, Any]
    stored: float
    topics: tuple[TopicCount, ...] = ()


@dataclass(frozen=True)
class BagEntry:
    """One vehicle's bag name for a stored object (one object may have several entries: dedup)."""

    vehicle: str
    bag_name: str
    sha256: str
    priority: int
    tags: tuple[str, ...]
    arrived: float
    upload_id: str


@dataclass(frozen=True)
class CatalogedBag:
    entry: BagEntry
    object: StoredObject


@dataclass(frozen=True)
class BundleRecord:
    id: str  # sha256 of manifest.json
    name: str
    version: int
    manifest: str  # manifest.json as stored (for display; the vehicle verifies the downloaded bytes)
    stored: float


@dataclass(frozen=True)
class Release:
    channel: str
    seq: int  # 1, 2, ... per channel; the highest is current
    bundle_id: str
    action: str  # publish | rollback
    principal: str
    at: float


@dataclass(frozen=True)
class TokenRecord:
    token_hash: str  # sha256 of the token; the token itself is never stored
    principal: str
    role: str
    created: float
    revoked: bool = field(default=False)


# -- interfaces ------------------------------------------------------------------------------------
class Transactional(Protocol):
    def transaction(self) -> AbstractContextManager[None]:
        """Everything done inside commits together, durably, or not at all, isolated from other writers."""
        ...


class UploadCatalog(Transactional, Protocol):
    def add_upload(self, upload: UploadRecord) -> None: ...

    def get_upload(self, upload_id: str) -> UploadRecord | None: ...

    def find_upload(self, vehicle: str, bag_name: str, sha256: str) -> UploadRecord | None:
        """The newest upload with this key (a bridge that lost its upload id resumes it)."""
        ...

    def find_piece(self, vehicle: str, bag_name: str, sha256: str, piece: str) -> UploadRecord | None:
        """The newest complete upload of file `piece` of recording `bag_name` with this content."""
        ...

    def count_open_uploads(self, vehicle: str) -> int: ...

    def list_uploads(self, vehicle: str | None) -> list[UploadRecord]:
        """Oldest first; `vehicle=None`: everybody's."""
        ...

    def set_upload_state(self, upload_id: str, state: str, completed: float | None = None) -> None: ...

    def fail_upload(self, upload_id: str, error: str) -> None:
        """State FAILED with the reason (the hub refused the object for good)."""
        ...

    def add_challenge(self, upload_id: str, challenge: str) -> None:
        """Keep an upload's proof-of-possession challenge (`wire.ProofChallenge` as JSON text)."""
        ...

    def get_challenge(self, upload_id: str) -> str | None: ...

    def take_challenge(self, upload_id: str) -> str | None:
        """Remove and return the challenge: each one is answered at most once."""
        ...

    def stale_uploads(self, cutoff: float) -> list[str]:
        """Ids of open uploads created before `cutoff` with no chunk event since."""
        ...

    def held_chunks(self, upload_id: str) -> list[int]:
        """Indices of the chunks recorded as held, ascending."""
        ...

    def held_chunk_sha256(self, upload_id: str, idx: int) -> str | None: ...

    def record_chunk(self, upload_id: str, idx: int, sha256: str, size: int, at: float) -> None:
        """Record chunk `idx` as held (replacing an earlier record) and log a `stored` event, atomically.

        May be lost on power loss (not on a crash): the whole-object sha256 at completion catches it,
        so a backend may commit this without waiting for the disk.
        """
        ...

    def drop_chunks(self, upload_id: str) -> None: ...

    def add_chunk_event(self, upload_id: str, idx: int, outcome: str, at: float) -> None: ...

    def chunk_events(self, upload_id: str) -> list[ChunkEvent]:
        """In time order (then by index)."""
        ...


class BagCatalog(Transactional, Protocol):
    def get_object(self, sha256: str) -> StoredObject | None:
        """With its topics, by name."""
        ...

    def add_object(self, obj: StoredObject) -> None:
        """Record a stored object and its topics (once per sha256)."""
        ...

    def add_bag_entry(self, entry: BagEntry) -> None:
        """Add a vehicle's entry; an entry with the same (vehicle, bag_name, sha256) is kept as it is."""
        ...

    def bag_entries(self, sha256: str) -> list[BagEntry]:
        """Every entry of one object (who uploaded it under which name)."""
        ...

    def list_bags(self, vehicle: str | None) -> list[CatalogedBag]:
        """Entries with their objects, by arrival then name; `vehicle=None`: everybody's."""
        ...


class ModelRegistry(Transactional, Protocol):
    def add_bundle(self, bundle: BundleRecord) -> None:
        """Record a verified bundle (once per id)."""
        ...

    def get_bundle(self, bundle_id: str) -> BundleRecord | None: ...

    def append_release(self, channel: str, bundle_id: str, action: str, principal: str, at: float) -> Release:
        """The channel's next release (seq = last + 1); history is only ever appended to."""
        ...

    def releases(self, channel: str) -> list[Release]:
        """Oldest first."""
        ...

    def latest_release(self, channel: str) -> Release | None: ...


class TokenCatalog(Protocol):
    def add_token(self, token: TokenRecord) -> None: ...

    def revoke_tokens(self, principal: str) -> int:
        """Revoke every active token of `principal`; how many were revoked."""
        ...

    def list_tokens(self) -> list[TokenRecord]:
        """By principal, then creation."""
        ...

    def active_token(self, token_hash: str) -> TokenRecord | None: ...


class Catalog(UploadCatalog, BagCatalog, ModelRegistry, TokenCatalog, Protocol):
    @property
    def kind(self) -> str:
        """The backend's name, as `/v1/health` reports it (sqlite, postgresql, ...)."""
        ...

    def close(self) -> None: ...
