"""The whole-object sha256 of an upload, advanced in the background while its chunks arrive.

A worker extends the digest over the contiguous prefix of held chunks (re-reading them from
the page cache), so `complete` hashes only what is left. A held chunk's file is immutable until
the upload completes or is reset (`store.ChunkFile`), and a reset stops the tracking, so the
digest always covers the bytes as stored. The state is in memory only: after a hub restart
`complete` re-reads every chunk, so correctness never depends on it.
"""

from __future__ import annotations

import hashlib
import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from roadloop_hub.catalog import UploadCatalog, UploadRecord
from roadloop_hub.errors import HubError
from roadloop_hub.store import BlobStore

__all__ = ["PrefixHasher"]

log = logging.getLogger("roadloop.hub")


class PrefixHasher:
    def __init__(self, catalog: UploadCatalog, store: BlobStore, workers: int = 2) -> None:
        self.catalog, self.store = catalog, store
        self._running: dict[str, tuple[int, Any]] = {}  # upload id -> (bytes covered, sha256 so far)
        self._locks: dict[str, threading.Lock] = {}  # present while the upload is tracked
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="roadloop-hub-hash")

    def chunk_held(self, upload: UploadRecord) -> None:
        """A chunk of `upload` was recorded: extend the digest, off the request path."""
        with self._guard:
            self._locks.setdefault(upload.id, threading.Lock())
        self._pool.submit(self._advance, upload)

    def take(self, upload_id: str) -> tuple[int, Any]:
        """Stop tracking the upload; (bytes covered, the sha256 object over them) — (0, fresh) if none."""
        with self._guard:
            lock = self._locks.pop(upload_id, threading.Lock())
        with lock:
            return self._running.pop(upload_id, (0, hashlib.sha256()))

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)

    def _advance(self, upload: UploadRecord) -> None:
        with self._guard:
            lock = self._locks.get(upload.id)
        if lock is None:
            return  # completed meanwhile
        with lock:
            if upload.id not in self._locks:
                return
            covered, digest = self._running.get(upload.id, (0, hashlib.sha256()))
            held = self.store.held(upload.id, upload.size, upload.chunk_size)
            try:
                while covered < upload.size:
                    idx = covered // upload.chunk_size
                    if self.catalog.held_chunk_sha256(upload.id, idx) is None:
                        break
                    data = held.read_chunk(idx)
                    digest.update(data)
                    covered += len(data)
            except (OSError, HubError) as err:  # only an optimisation: `complete` hashes what is left
                log.warning("prefix hash of upload %s stopped: %s", upload.id, err)
            self._running[upload.id] = (covered, digest)
