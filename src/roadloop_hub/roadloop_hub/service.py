"""The hub without HTTP: one catalog backend and one blob store, and the three services over them.

    hub.uploads    resumable uploads (create, chunks, complete, gc)      -> uploads.UploadService
    hub.bags       the bag catalog (records, listings, who sees what)    -> bags.BagService
    hub.recordings recordings shipped in pieces, assembled into one bag  -> recordings.RecordingService
    hub.registry   bundles and channel releases (publish, rollback)      -> registry.RegistryService

Each service enforces who may do what and refuses with `RequestRefused(status, detail)`; the
HTTP layer (`routes`) only maps requests onto them.
"""

from __future__ import annotations

from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from roadloop_hub.auth import Principal, lookup
from roadloop_hub.bags import BagService
from roadloop_hub.catalog import Catalog
from roadloop_hub.config import HubConfig
from roadloop_hub.recordings import RecordingService
from roadloop_hub.registry import RegistryService
from roadloop_hub.store import BlobStore
from roadloop_hub.uploads import UploadService

__all__ = ["Hub"]


class Hub:
    def __init__(self, catalog: Catalog, store: BlobStore, cfg: HubConfig, public_key: Ed25519PublicKey | None) -> None:
        self.catalog, self.store, self.cfg = catalog, store, cfg
        self.bags = BagService(catalog, store)
        self.uploads = UploadService(catalog, self.bags, store, cfg)
        self.recordings = RecordingService(catalog, self.bags, store, cfg)
        self.registry = RegistryService(catalog, store, cfg.channels, public_key)

    def authenticate(self, token: str) -> Principal | None:
        """Who holds this bearer token (None: unknown or revoked)."""
        return lookup(self.catalog, token)

    def health(self) -> dict[str, Any]:
        return {"ok": True, "db": self.catalog.kind}

    def close(self) -> None:
        self.uploads.close()
        self.catalog.close()
