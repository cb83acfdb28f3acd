"""The fleet hub: resumable uploads into a content-addressed store, the bag catalog, the bundle registry.

    hub = open_hub(root, load_hub_config(path))   # store + catalog (SQLite or PostgreSQL)
    app = create_app(hub)                           # FastAPI app served by `roadloop hub serve`

The service (`Hub`: `uploads`, `bags`, `registry`) runs over the `Catalog` interface
(`catalog`), implemented on SQL by `SqlCatalog`; the wire format it speaks is
`roadloop_core.contract.wire`, its client `roadloop_core.hub_client.HubClient`. Needs neither
torch nor roadloop_vehicle.
"""

from roadloop_hub.app import create_app
from roadloop_hub.auth import Principal, add_token, revoke_tokens
from roadloop_hub.catalog import Catalog
from roadloop_hub.config import HubConfig, load_hub_config
from roadloop_hub.errors import CatalogError, HubError, RequestRefused, StoreError
from roadloop_hub.server import open_hub, serve
from roadloop_hub.service import Hub
from roadloop_hub.sql_catalog import SqlCatalog, open_catalog
from roadloop_hub.store import BlobStore

__all__ = [
    "BlobStore",
    "Catalog",
    "CatalogError",
    "Hub",
    "HubConfig",
    "HubError",
    "Principal",
    "RequestRefused",
    "SqlCatalog",
    "StoreError",
    "add_token",
    "create_app",
    "load_hub_config",
    "open_catalog",
    "open_hub",
    "revoke_tokens",
    "serve",
]
