"""Opening a hub root (store + catalog + settings) and serving it with uvicorn."""

from __future__ import annotations

import socket
from dataclasses import replace
from pathlib import Path

from roadloop_core.bundle import load_public_key
from roadloop_hub.config import HubConfig
from roadloop_hub.errors import HubError
from roadloop_hub.service import Hub
from roadloop_hub.sql_catalog import open_catalog
from roadloop_hub.store import BlobStore

__all__ = ["open_hub", "serve"]


def open_hub(root: Path, cfg: HubConfig, *, create: bool = True) -> Hub:
    """Open the hub at `root`; commands that only read or maintain a hub pass create=False."""
    if not create and not root.is_dir():
        raise HubError(f"{root}: no hub here (start one with `roadloop hub serve --root {root}`)")
    root.mkdir(parents=True, exist_ok=True)
    key = None
    if cfg.public_key:
        key_path = Path(cfg.public_key)
        key = load_public_key(key_path if key_path.is_absolute() else root / key_path)
    return Hub(open_catalog(cfg.db, root), BlobStore(root), cfg, key)


def serve(root: Path, cfg: HubConfig, host: str | None = None, port: int | None = None) -> None:
    import uvicorn

    from roadloop_hub.app import create_app

    cfg = replace(cfg, host=host or cfg.host, port=cfg.port if port is None else port)
    # Bind first ourselves, so a taken port is one clear line (uvicorn would log and exit 3).
    family = socket.AF_INET6 if ":" in cfg.host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((cfg.host, cfg.port))
    except OSError as err:
        sock.close()
        raise HubError(f"cannot serve on {cfg.host}:{cfg.port}: {err.strerror}") from err
    hub = open_hub(root, cfg)
    # What a crash of the previous server left behind (chunk bodies in flight, half-unpacked objects, chunks of
    # uploads that had just completed): only the serving process does this, before it takes requests; a CLI on
    # the same root might otherwise cut a live request short.
    hub.uploads.recover()
    config = uvicorn.Config(
        create_app(hub),
        log_level=cfg.log_level,
        timeout_keep_alive=30,
        h11_max_incomplete_event_size=64 << 10,
    )
    try:
        uvicorn.Server(config).run(sockets=[sock])
    finally:
        sock.close()
        hub.close()
