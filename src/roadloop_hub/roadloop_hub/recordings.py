"""Recordings shipped while they were written: pieces (one upload per file) assembled into one bag.

A long drive is recorded as split files (`<name>_0.mcap`, `<name>_1.mcap`, ...). The bridge ships
each file once the recorder has closed it, as an upload of its own (`piece`: the file's name),
and metadata.yaml when the recording has stopped. Every piece passes the upload protocol's checks
(chunk and whole sha256, the wire's tar holding exactly that one file, bounded metadata parsing).
`assemble` then builds the bag folder from the verified pieces (hard links into the store: no byte
is copied), refuses it unless metadata.yaml names exactly the storage files given, hashes the
folder's tar stream (the content address a whole upload of the same folder gets) and catalogs it.
"""

from __future__ import annotations

import threading
import time
import uuid
from pathlib import Path
from typing import Any

from roadloop_core.bag.metadata import MAX_METADATA_BYTES, parse_metadata
from roadloop_core.bag.storage import STORAGE_SUFFIXES
from roadloop_core.contract.wire import COMPLETE, TarStream, chunk_count
from roadloop_core.errors import RoadloopError
from roadloop_hub.auth import Principal
from roadloop_hub.bags import METADATA, BagService, read_object
from roadloop_hub.catalog import UploadCatalog, UploadRecord
from roadloop_hub.config import HubConfig
from roadloop_hub.errors import RequestRefused
from roadloop_hub.request_fields import int_field, name_field, sha256_field
from roadloop_hub.store import BlobStore

__all__ = ["MAX_PIECES", "RecordingService"]

MAX_PIECES = 100_000  # files of one recording (a week of 10-second splits)
MAX_TAGS = 32


def _pieces(body: dict[str, Any], name: str) -> dict[str, str]:
    pieces = body.get("pieces")
    if not isinstance(pieces, dict) or not pieces or len(pieces) > MAX_PIECES:
        raise RequestRefused(400, f'pieces must be {{"<file>": "<sha256 of its piece upload>"}}, 1-{MAX_PIECES} files')
    out = {name_field(f, "piece"): sha256_field(s, f"piece {f} sha256") for f, s in pieces.items()}
    if METADATA not in out:
        raise RequestRefused(400, f"recording {name}: the pieces must include {METADATA} (sent once recording stopped)")
    return out


class RecordingService:
    def __init__(self, catalog: UploadCatalog, bags: BagService, store: BlobStore, cfg: HubConfig) -> None:
        self.catalog, self.bags, self.store, self.cfg = catalog, bags, store, cfg
        self._guard = threading.Lock()
        self._locks: dict[tuple[str, str], threading.Lock] = {}

    def assemble(self, who: Principal, name: str, body: dict[str, Any]) -> dict[str, Any]:
        """Build, check, store and catalog recording `name` from this vehicle's completed piece uploads."""
        if who.is_admin:
            raise RequestRefused(403, "recordings are assembled with a vehicle token")
        name = name_field(name, "recording name")
        pieces = _pieces(body, name)
        priority = int_field(body.get("priority", 0), "priority", -1000, 1000)
        tags = body.get("tags", [])
        if not isinstance(tags, list) or len(tags) > MAX_TAGS:
            raise RequestRefused(400, f"tags must be a list of at most {MAX_TAGS} names")
        tags = sorted({name_field(t, "tag") for t in tags})
        with self._guard:
            lock = self._locks.setdefault((who.name, name), threading.Lock())
        with lock:  # a bridge retrying a slow assembly waits for the first one instead of racing it
            return self._assemble(who, name, pieces, priority, tags)

    def _assemble(
        self, who: Principal, name: str, pieces: dict[str, str], priority: int, tags: list[str]
    ) -> dict[str, Any]:
        for file, sha in sorted(pieces.items()):
            if self.catalog.find_piece(who.name, name, sha, file) is None or not self.store.has_bag(sha):
                raise RequestRefused(409, f"recording {name}: piece {file} ({sha[:12]}…) is not on the hub; upload it")
        what = f"recording {name}"
        try:
            work = self.store.link_pieces(pieces)
        except OSError as err:
            raise RequestRefused(503, f"{what}: cannot assemble now ({err.strerror or err}); retry") from err
        try:
            self._check_files(work, set(pieces), what)
            stream = TarStream(work)
            sha, size = stream.sha256(), stream.size
            if self.bags.is_stored(sha):
                self.store.discard(work)
            else:
                stored = read_object(sha, size, work)
                self.store.install_bag(work, sha)
                self.bags.add_object(stored)
        except OSError as err:
            self.store.discard(work)
            raise RequestRefused(503, f"{what}: cannot store the bag now ({err.strerror or err}); retry") from err
        except BaseException:
            self.store.discard(work)
            raise
        with self.catalog.transaction():
            u = self.catalog.find_upload(who.name, name, sha)
            if u is None or u.piece or u.state != COMPLETE:
                now, chunk = time.time(), self.cfg.max_chunk_bytes
                u = UploadRecord(
                    str(uuid.uuid4()), who.name, name, size, sha, chunk, chunk_count(size, chunk), priority,
                    tuple(tags), COMPLETE, now, now,
                )  # fmt: skip
                self.catalog.add_upload(u)
            self.bags.add_entry(who.name, name, sha, priority, tags, u.id)
        return {
            "upload_id": u.id,
            "bag_name": name,
            "state": COMPLETE,
            "sha256": sha,
            "size": size,
            "pieces": len(pieces),
            "bag": self.bags.record(sha),
        }

    @staticmethod
    def _check_files(work: Path, files: set[str], what: str) -> None:
        """metadata.yaml parses (bounded) and names exactly the storage files among the pieces."""
        meta_path = work / METADATA
        if meta_path.stat().st_size > MAX_METADATA_BYTES:
            raise RequestRefused(422, f"{what}: {METADATA} is larger than {MAX_METADATA_BYTES} bytes")
        try:
            meta = parse_metadata(meta_path.read_bytes().decode("utf-8"), f"{what}: {METADATA}")
        except UnicodeDecodeError:
            raise RequestRefused(422, f"{what}: {METADATA} is not UTF-8 text") from None
        except RoadloopError as err:
            raise RequestRefused(422, str(err)) from None
        listed = {Path(p).name for p in meta.relative_file_paths}
        storage = {f for f in files if Path(f).suffix in STORAGE_SUFFIXES}
        if missing := sorted(listed - files):
            raise RequestRefused(422, f"{what}: {METADATA} names {missing[0]}, which no piece carries")
        if unlisted := sorted(storage - listed):
            raise RequestRefused(422, f"{what}: piece {unlisted[0]} is a storage file {METADATA} does not name")
