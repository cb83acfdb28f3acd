"""The fleet hub: resumable uploads into a content-addressed store, the bag catalog, the bundle registry.

hub = open_hub(root, load_hub_config())        # store + catalog (SQLite or PostgreSQL)
app = create_app(hub)                            # FastAPI app served by `roadloop hub serve`
"""

from roadloop_cluster.hub.app import create_app
from roadloop_cluster.hub.auth import Principal, add_token
from roadloop_cluster.hub.config import HubConfig, load_hub_config
from roadloop_cluster.hub.errors import CatalogError, HubError, RequestRefused, StoreError
from roadloop_cluster.hub.server import open_hub, serve
from roadloop_cluster.hub.service import Hub
from roadloop_cluster.hub.store import BlobStore

__all__ = [
    "BlobStore",
    "CatalogError",
    "Hub",
    "HubConfig",
    "HubError",
    "Principal",
    "RequestRefused",
    "StoreError",
    "add_token",
    "create_app",
    "load_hub_config",
    "open_hub",
    "serve",
]
