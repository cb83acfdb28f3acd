"""The bag catalog's logic: what a stored bag is recorded as, and who may see which bag.

A vehicle sees a bag only through its own entries, and it gets an entry only by uploading the
bytes or by proving it holds them (`UploadService.prove`); for anything else the answer is the
same 404 whether or not the object exists, so knowing a sha256 reveals nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from roadloop_core.bag import open_bag
from roadloop_core.bag.metadata import MAX_METADATA_BYTES, load_untrusted_yaml
from roadloop_core.contract.wire import TarMember
from roadloop_core.errors import RoadloopError
from roadloop_hub.auth import Principal
from roadloop_hub.catalog import BagCatalog, BagEntry, CatalogedBag, StoredObject, TopicCount
from roadloop_hub.errors import RequestRefused, StoreError
from roadloop_hub.request_fields import sha256_field
from roadloop_hub.store import BlobStore

__all__ = ["DISENGAGEMENT", "METADATA", "BagService", "check_metadata", "read_object"]

DISENGAGEMENT = "disengagement"  # tag added when the bag's custom data says roadloop.intervention=true
METADATA = "metadata.yaml"

log = logging.getLogger("roadloop.hub")


def check_metadata(folder: Path, members: Sequence[TarMember], what: str) -> None:
    """Refuse (StoreError) a metadata.yaml the hub cannot parse at bounded cost: too large, not UTF-8 text,
    not YAML, or YAML whose aliases or nesting would blow up (an alias bomb). Nothing else reads it first."""
    meta = next((m for m in members if m.name == METADATA), None)
    if meta is None:
        return  # read_object records why such a bag cannot be read
    if meta.size > MAX_METADATA_BYTES:
        raise StoreError(f"{what}: {METADATA} is {meta.size} bytes, more than the {MAX_METADATA_BYTES} allowed")
    try:
        text = (folder / METADATA).read_bytes().decode("utf-8")
    except UnicodeDecodeError as err:
        raise StoreError(f"{what}: {METADATA} is not UTF-8 text (byte {err.start})") from None
    try:
        load_untrusted_yaml(text, METADATA)
    except RoadloopError as err:
        raise StoreError(f"{what}: {err}") from None


def _topics(obj: StoredObject) -> list[dict[str, Any]]:
    return [{"topic": t.topic, "type": t.type, "count": t.count} for t in obj.topics]


def read_object(sha256: str, size: int, bag_dir: Path) -> StoredObject:
    """What the catalog records of a stored bag folder; one it cannot read is kept with the reason."""
    try:
        with open_bag(bag_dir) as bag:
            info = bag.info
        return StoredObject(
            sha256, size, info.storage, info.start_ns, info.end_ns, info.message_count, True, "",
            dict(info.custom_data), time.time(),
            tuple(TopicCount(t.name, t.type, t.message_count) for t in info.topics),
        )  # fmt: skip
    except RoadloopError as err:  # keep the bytes (nothing recorded is lost), say why it cannot be read
        return StoredObject(sha256, size, "", 0, 0, 0, False, str(err), {}, time.time())
    except Exception as err:  # a reader bug must not wedge the upload: keep the bytes, record the fault
        log.exception("reading bag %s failed", sha256[:12])
        reason = f"the bag reader failed: {type(err).__name__}: {str(err)[:200]}"
        return StoredObject(sha256, size, "", 0, 0, 0, False, reason, {}, time.time())


class BagService:
    def __init__(self, catalog: BagCatalog, store: BlobStore) -> None:
        self.catalog, self.store = catalog, store

    def is_stored(self, sha256: str) -> bool:
        """The object is in the store and the catalog (so an upload of it can be acknowledged at once)."""
        return self.store.has_bag(sha256) and self.catalog.get_object(sha256) is not None

    def add_object(self, obj: StoredObject) -> None:
        """Catalog a bag folder just stored (once per sha256); `obj` was read before, outside the catalog."""
        with self.catalog.transaction():
            if self.catalog.get_object(obj.sha256) is None:
                self.catalog.add_object(obj)

    def owns(self, vehicle: str, sha256: str) -> bool:
        """The vehicle has an entry for this stored object (it uploaded or proved it)."""
        return self.is_stored(sha256) and any(e.vehicle == vehicle for e in self.catalog.bag_entries(sha256))

    def add_entry(
        self, vehicle: str, bag_name: str, sha256: str, priority: int, tags: Sequence[str], upload_id: str
    ) -> None:
        """One vehicle's entry for a stored object (tagged `disengagement` when its custom data says so)."""
        obj = self.catalog.get_object(sha256)
        custom = obj.custom_data if obj is not None else {}
        tag_set = set(tags)
        if str(custom.get("roadloop.intervention", "")).lower() == "true":
            tag_set.add(DISENGAGEMENT)
        self.catalog.add_bag_entry(
            BagEntry(vehicle, bag_name, sha256, priority, tuple(sorted(tag_set)), time.time(), upload_id)
        )

    def record(self, sha256: str) -> dict[str, Any] | None:
        """A stored object as the API shows it, or None if there is none."""
        obj = self.catalog.get_object(sha256)
        if obj is None:
            return None
        return {
            "sha256": sha256,
            "size": obj.size,
            "storage": obj.storage,
            "start_ns": obj.start_ns,
            "end_ns": obj.end_ns,
            "message_count": obj.message_count,
            "readable": obj.readable,
            "error": obj.error,
            "custom_data": obj.custom_data,
            "topics": _topics(obj),
            "path": str(self.store.bag_dir(sha256)),
        }

    def list_bags(
        self, who: Principal | None, vehicle: str | None = None, tag: str | None = None
    ) -> list[dict[str, Any]]:
        """Catalog entries; a vehicle sees only its own, an admin (or the local CLI, who=None) all."""
        if who is not None and not who.is_admin:
            vehicle = who.name
        rows = [_row(b) for b in self.catalog.list_bags(vehicle or None)]
        return [r for r in rows if tag in r["tags"]] if tag else rows

    def get_bag(self, who: Principal, sha256: str) -> dict[str, Any]:
        """One bag's record with its uploads; only for a vehicle with an entry for it, or an admin."""
        sha = sha256_field(sha256, "bag sha256")
        entries = self.catalog.bag_entries(sha)
        if not entries or (not who.is_admin and who.name not in {e.vehicle for e in entries}):
            raise RequestRefused(404, f"bag {sha[:12]}… not found")  # the same answer: existence is not revealed
        rec = self.record(sha)
        if rec is None:
            raise RequestRefused(404, f"bag {sha[:12]}… not found")
        rec["uploads"] = [
            {"vehicle": e.vehicle, "bag_name": e.bag_name, "tags": list(e.tags), "arrived": e.arrived}
            for e in entries
            if who.is_admin or e.vehicle == who.name
        ]
        return rec


def _row(bag: CatalogedBag) -> dict[str, Any]:
    e, o = bag.entry, bag.object
    return {
        "vehicle": e.vehicle,
        "bag_name": e.bag_name,
        "sha256": e.sha256,
        "priority": e.priority,
        "tags": list(e.tags),
        "arrived": e.arrived,
        "size": o.size,
        "start_ns": o.start_ns,
        "end_ns": o.end_ns,
        "message_count": o.message_count,
        "readable": o.readable,
        "error": o.error,
        "topics": _topics(o),
    }
