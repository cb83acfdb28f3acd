"""`roadloop hub ...`: serve the hub, manage tokens, list the catalog, publish and roll back bundles."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from datetime import datetime, timezone
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from roadloop_core.config import config_dir
from roadloop_core.fsio import atomic_write_text, replace_symlink
from roadloop_core.hub_client import HubClient
from roadloop_hub.auth import ADMIN, VEHICLE, add_token, list_tokens, revoke_tokens
from roadloop_hub.config import HubConfig, load_hub_config
from roadloop_hub.errors import HubError
from roadloop_hub.server import open_hub
from roadloop_hub.server import serve as serve_hub
from roadloop_hub.service import Hub

__all__ = ["app"]

app = typer.Typer(
    help="The fleet hub: resumable bag uploads, the bag catalog, and the signed-bundle registry.",
    no_args_is_help=True,
)
token_app = typer.Typer(help="Per-vehicle and admin bearer tokens (stored hashed; shown once).", no_args_is_help=True)
app.add_typer(token_app, name="token")

Root = Annotated[Path, typer.Option("--root", help="Hub data folder (store, catalog.db).")]
Db = Annotated[str | None, typer.Option("--db", help="Catalog URL: postgresql://... (default SQLite ROOT/catalog.db).")]
ConfigOpt = Annotated[Path | None, typer.Option("--config", help="hub.yaml (default config/hub.yaml).")]
HubUrl = Annotated[str, typer.Option("--hub", help="Hub base URL, e.g. http://127.0.0.1:8470.")]
TokenFile = Annotated[Path, typer.Option("--token-file", help="File holding the admin token.")]
CLIENT_TIMEOUT_S = 120.0  # a publish waits while the hub unpacks and verifies the bundle


def _cfg(config: Path | None, db: str | None) -> HubConfig:
    cfg = load_hub_config(config or config_dir() / "hub.yaml")
    return replace(cfg, db=db) if db is not None else cfg


@contextmanager
def _opened(root: Path, cfg: HubConfig, *, create: bool = False) -> Iterator[Hub]:
    hub = open_hub(root, cfg, create=create)
    try:
        yield hub
    finally:
        hub.close()


@app.command()
def serve(
    root: Root,
    host: Annotated[str | None, typer.Option(help="Address to bind (default from hub.yaml: 127.0.0.1).")] = None,
    port: Annotated[int | None, typer.Option(help="Port (default from hub.yaml: 8470).")] = None,
    db: Db = None,
    public_key: Annotated[Path | None, typer.Option(help="Ed25519 public key (PEM) for bundles.")] = None,
    config: ConfigOpt = None,
) -> None:
    """Serve the hub's HTTP API (plain HTTP: put a TLS reverse proxy in front, see docs/fleet.md)."""
    cfg = _cfg(config, db)
    if public_key is not None:
        cfg = replace(cfg, public_key=str(public_key.resolve()))
    serve_hub(root, cfg, host, port)


@token_app.command("add")
def token_add(
    name: Annotated[str, typer.Argument(help="Vehicle name (or admin name with --admin).")],
    root: Root,
    admin: Annotated[bool, typer.Option("--admin", help="An admin token (publishing, all bags).")] = False,
    out: Annotated[Path | None, typer.Option(help="Write the token to this file (0600).")] = None,
    db: Db = None,
    config: ConfigOpt = None,
) -> None:
    """Create a token; it is printed (or written) once and only its sha256 is kept."""
    with _opened(root, _cfg(config, db), create=True) as hub:
        token = add_token(hub.catalog, name, ADMIN if admin else VEHICLE)
    if out is None:
        typer.echo(token)
        return
    atomic_write_text(out, token + "\n", mode=0o600)


@token_app.command("ls")
def token_ls(root: Root, db: Db = None, config: ConfigOpt = None) -> None:
    """List token holders (hash prefixes only)."""
    with _opened(root, _cfg(config, db)) as hub:
        tokens = list_tokens(hub.catalog)
    table = Table("principal", "role", "created", "revoked", "hash")
    for t in tokens:
        table.add_row(t.principal, t.role, _when(t.created), "yes" if t.revoked else "", t.token_hash[:12])
    Console().print(table)


@token_app.command("revoke")
def token_revoke(name: str, root: Root, db: Db = None, config: ConfigOpt = None) -> None:
    """Revoke every token of NAME."""
    with _opened(root, _cfg(config, db)) as hub:
        n = revoke_tokens(hub.catalog, name)
    if n == 0:
        raise HubError(f"no active token for {name!r}")
    typer.echo(f"revoked {n} token(s) of {name}")


def _when(ts: float | None) -> str:
    return "" if ts is None else datetime.fromtimestamp(ts, timezone.utc).strftime("%Y-%m-%d %H:%M:%S")


def _ns(ns: int) -> str:
    return _when(ns / 1e9) if ns else "-"


@app.command("ls")
def ls(
    root: Root,
    vehicle: Annotated[str | None, typer.Option(help="Only this vehicle's bags.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only bags with this tag (e.g. disengagement).")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")] = False,
    plot: Annotated[Path | None, typer.Option(help="Also draw the bags' time spans per vehicle to this PNG.")] = None,
    db: Db = None,
    config: ConfigOpt = None,
) -> None:
    """List the catalog: bag, vehicle, time range, topics and counts, tags, arrival, sha256."""
    with _opened(root, _cfg(config, db)) as hub:
        rows = hub.bags.list_bags(None, vehicle, tag)
    if plot is not None:
        from roadloop_hub.plot import plot_timeline

        plot_timeline(rows, plot)
    if as_json:
        typer.echo(json.dumps(rows, indent=2))
        return
    table = Table("vehicle", "bag", "sha256", "start (UTC)", "dur s", "msgs", "topics", "tags", "arrived (UTC)")
    for r in rows:
        dur = (r["end_ns"] - r["start_ns"]) / 1e9 if r["readable"] else 0.0
        topics = ", ".join(f"{t['topic']}:{t['count']}" for t in r["topics"]) or (r["error"] or "-")
        table.add_row(
            r["vehicle"], r["bag_name"], r["sha256"][:12], _ns(r["start_ns"]), f"{dur:.1f}",
            str(r["message_count"]), topics, ",".join(r["tags"]), _when(r["arrived"]),
        )  # fmt: skip
    Console(width=200).print(table)


@app.command("export-bags")
def export_bags(
    root: Root,
    out: Annotated[Path, typer.Option(help="Folder to fill with one symlink per bag: <vehicle>__<bag>.")],
    vehicle: Annotated[str | None, typer.Option(help="Only this vehicle's bags.")] = None,
    tag: Annotated[str | None, typer.Option(help="Only bags with this tag.")] = None,
    db: Db = None,
    config: ConfigOpt = None,
) -> None:
    """Materialise stored bags as plain bag folders (symlinks into ROOT/bags/<sha256>) for `roadloop data build`."""
    with _opened(root, _cfg(config, db)) as hub:
        rows = hub.bags.list_bags(None, vehicle, tag)
        store = hub.store
    out.mkdir(parents=True, exist_ok=True)
    n = 0
    for r in rows:
        if not r["readable"]:
            continue
        link = out / f"{r['vehicle']}__{r['bag_name']}"
        target = store.bag_dir(r["sha256"]).resolve()
        if link.is_symlink() and link.resolve() == target:
            continue
        replace_symlink(link, target)
        n += 1
    typer.echo(f"{n} bag(s) linked under {out}")


@app.command()
def gc(
    root: Root,
    older_than_h: Annotated[float, typer.Option(help="Drop unfinished uploads untouched for this many hours.")] = 168.0,
    db: Db = None,
    config: ConfigOpt = None,
) -> None:
    """Free the disk held by abandoned uploads (a bridge that comes back later simply starts a new one)."""
    with _opened(root, _cfg(config, db)) as hub:
        dropped = hub.uploads.collect_garbage(older_than_h * 3600.0)
    typer.echo(f"dropped {len(dropped)} abandoned upload(s)")


@app.command()
def publish(
    bundle: Annotated[Path, typer.Argument(help="Bundle folder (policy.onnx, manifest.json, manifest.sig).")],
    hub: HubUrl,
    token_file: TokenFile,
    channel: Annotated[str, typer.Option(help="Channel: candidate or production.")] = "candidate",
) -> None:
    """Publish a signed bundle to a channel (the hub verifies it against its public key first)."""
    if not bundle.is_dir():
        raise HubError(f"{bundle}: no such bundle folder")
    with HubClient.from_token_file(hub, token_file, timeout_s=CLIENT_TIMEOUT_S) as client:
        rel = client.publish(channel, bundle)
    typer.echo(f"{channel}: {rel['name']} v{rel['version']} (release {rel['seq']}, bundle {rel['bundle_id'][:12]})")


@app.command()
def rollback(
    hub: HubUrl,
    token_file: TokenFile,
    channel: Annotated[str, typer.Option(help="Channel to roll back.")] = "production",
    to_version: Annotated[int | None, typer.Option(help="Version to return to (default: the previous one).")] = None,
) -> None:
    """Make an earlier release of a channel current again (kept in the channel's history)."""
    with HubClient.from_token_file(hub, token_file, timeout_s=CLIENT_TIMEOUT_S) as client:
        rel = client.rollback(channel, to_version)
    typer.echo(f"{channel}: now {rel['name']} v{rel['version']} (release {rel['seq']})")


@app.command()
def history(hub: HubUrl, token_file: TokenFile, channel: Annotated[str, typer.Option()] = "production") -> None:
    """A channel's releases, oldest first (the last one is current)."""
    with HubClient.from_token_file(hub, token_file, timeout_s=CLIENT_TIMEOUT_S) as client:
        rows = client.history(channel)
    table = Table("seq", "action", "name", "version", "bundle", "at (UTC)")
    for r in rows:
        table.add_row(str(r["seq"]), r["action"], r["name"], str(r["version"]), r["bundle_id"][:12], _when(r["at"]))
    Console().print(table)
