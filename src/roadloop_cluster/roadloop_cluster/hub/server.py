"""Opening a hub root (store + catalog + settings) and serving it with uvicorn."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from roadloop_cluster.hub.config import HubConfig
from roadloop_cluster.hub.db import open_database
from roadloop_cluster.hub.errors import HubError
from roadloop_cluster.hub.service import Hub
from roadloop_cluster.hub.store import BlobStore
from roadloop_core.bundle import load_public_key

__all__ = ["open_hub", "serve"]


def open_hub(root: Path, cfg: HubConfig) -> Hub:
    root.mkdir(parents=True, exist_ok=True)
    key = None
    if cfg.public_key:
        key_path = Path(cfg.public_key)
        key = load_public_key(key_path if key_path.is_absolute() else root / key_path)
    return Hub(open_database(cfg.db, root), BlobStore(root), cfg, key)


def serve(root: Path, cfg: HubConfig, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    from roadloop_cluster.hub.app import create_app

    cfg = replace(cfg, host=host or cfg.host, port=cfg.port if port is None else port)
    hub = open_hub(root, cfg)
    try:
        uvicorn.run(
            create_app(hub),
            host=cfg.host,
            port=cfg.port,
            log_level=cfg.log_level,
            timeout_keep_alive=30,
            h11_max_incomplete_event_size=64 << 10,
        )
    except OSError as err:
        raise HubError(f"cannot serve on {cfg.host}:{cfg.port}: {err.strerror}") from err
    finally:
        hub.db.close()
