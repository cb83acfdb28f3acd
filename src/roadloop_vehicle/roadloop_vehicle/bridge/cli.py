"""`roadloop bridge ...`: ship closed bags to the hub and bring verified models back."""

from __future__ import annotations

import logging
import os
import signal
from dataclasses import replace
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TransferSpeedColumn
from rich.table import Table

from roadloop_core.config import config_dir
from roadloop_core.hub_client import read_token
from roadloop_vehicle.bridge.config import BridgeConfig, load_bridge_config
from roadloop_vehicle.bridge.daemon import Bridge, RunReport
from roadloop_vehicle.bridge.errors import BridgeError
from roadloop_vehicle.bridge.queue import UploadQueue

__all__ = ["app"]

app = typer.Typer(help="The vehicle bridge: upload closed bags to the hub, pull signed models.", no_args_is_help=True)


def _overrides(cfg: BridgeConfig, **fields: Any) -> BridgeConfig:
    chosen = {k: v for k, v in fields.items() if v is not None}
    try:
        return replace(cfg, **chosen)
    except ValueError as err:
        raise BridgeError(f"bridge options: {err}") from None


@app.command()
def run(
    watch: Annotated[Path, typer.Option(help="Recording folder holding one folder per bag.")],
    hub: Annotated[str, typer.Option(help="Hub base URL, e.g. https://hub.example.org.")],
    token_file: Annotated[Path, typer.Option(help="File holding this vehicle's bearer token.")],
    state: Annotated[Path, typer.Option(help="Bridge state folder (queue.db, diagnostics.jsonl, models.json).")],
    once: Annotated[bool, typer.Option("--once", help="Drain the queue and pull models once, then exit.")] = False,
    config: Annotated[Path | None, typer.Option(help="bridge.yaml (default config/bridge.yaml).")] = None,
    models: Annotated[Path | None, typer.Option(help="Models folder (versions/, current).")] = None,
    public_key: Annotated[Path | None, typer.Option(help="Ed25519 public key bundles must verify against.")] = None,
    channel: Annotated[str | None, typer.Option(help="Registry channel to follow.")] = None,
    no_models: Annotated[bool, typer.Option("--no-models", help="Upload only; do not pull models.")] = False,
    bandwidth: Annotated[float | None, typer.Option(help="Upload cap in bytes/s (0 = none).")] = None,
    quota: Annotated[int | None, typer.Option(help="Bytes of bags kept before confirmed ones are freed.")] = None,
    settle: Annotated[float | None, typer.Option(help="Seconds a bag must be untouched to count as closed.")] = None,
    chunk_bytes: Annotated[int | None, typer.Option(help="Upload chunk size in bytes.")] = None,
    poll: Annotated[float | None, typer.Option(help="Daemon: seconds between passes.")] = None,
    golden_bag: Annotated[Path | None, typer.Option(help="Bag replayed with each new bundle before install.")] = None,
    recording_distro: Annotated[
        str | None, typer.Option(help="The car's rosbag2 (humble: metadata.yaml only at stop; jazzy, kilted).")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", help="No progress bar.")] = False,
) -> None:
    """Upload closed bags by priority (resumable, checksummed), free disk of confirmed ones, pull models.

    A recording still being written ships its finished split files at once (one upload each); the
    hub assembles the bag when the recorder stops."""
    cfg = _overrides(
        load_bridge_config(config if config is not None else config_dir() / "bridge.yaml"),
        models_dir=str(models) if models else None,
        public_key=str(public_key) if public_key else None,
        channel=channel,
        pull_models=False if no_models else None,
        bandwidth_bytes_per_s=bandwidth,
        quota_bytes=quota,
        settle_s=settle,
        chunk_bytes=chunk_bytes,
        poll_interval_s=poll,
        golden_bag=str(golden_bag) if golden_bag else None,
        recording_distro=recording_distro,
    )
    if not watch.is_dir():
        raise BridgeError(f"{watch}: no such recording folder")
    logging.basicConfig(level=logging.INFO if not quiet else logging.WARNING, format="%(message)s")
    logging.getLogger("httpx").setLevel(logging.WARNING)
    vehicle = None
    if cfg.pull_models:  # bundles must match the drive node's observation spec; the golden replay runs its params
        from roadloop_vehicle.params import load_vehicle_params

        vehicle = load_vehicle_params(Path(cfg.vehicle_params) if cfg.vehicle_params else config_dir() / "vehicle.yaml")
    bridge = Bridge(cfg, watch, hub, read_token(token_file), state, vehicle=vehicle)
    try:
        if not once:
            stopping = [False]
            signal.signal(signal.SIGTERM, lambda *_: stopping.__setitem__(0, True))
            signal.signal(signal.SIGINT, lambda *_: stopping.__setitem__(0, True))
            bridge.run_forever(lambda: stopping[0])
            return
        with Progress(
            TextColumn("upload"),
            BarColumn(),
            DownloadColumn(),
            TransferSpeedColumn(),
            disable=quiet or not os.isatty(2),
        ) as progress:
            task = progress.add_task("upload", total=None)
            bridge.on_bytes = lambda n: progress.advance(task, n)
            report = bridge.run_once()
        _summary(report)
        if report.left or report.failed:
            raise BridgeError(
                f"{len(report.left)} bag(s) left in the queue, {len(report.failed)} refused; "
                f"last error: {bridge.last_error or '-'}"
            )
        if report.errors:  # e.g. the model channel could not be read: `--once` callers must know
            raise BridgeError(report.errors[0])
        if report.model is not None and report.model.action in ("refused", "retry"):  # not on the channel's model
            what = "refused" if report.model.action == "refused" else "not installed yet (a corrupt download)"
            raise BridgeError(f"model {report.model.label} {what}: {report.model.reason}")
    finally:
        bridge.close()


def _summary(report: RunReport) -> None:
    model = report.model
    typer.echo(
        f"uploaded {len(report.uploaded)} bag(s) and {len(report.pieces)} piece(s) of recordings "
        f"({report.chunks_sent} chunk(s) sent, "
        f"{report.chunks_skipped} already on the hub), freed {len(report.deleted)}, "
        f"model: {model.action + ' ' + model.label if model else 'not pulled'}"
        + (f" ({model.reason})" if model and model.reason else "")
    )


@app.command()
def status(state: Annotated[Path, typer.Option(help="Bridge state folder.")]) -> None:
    """Show the upload queue: state, priority, tags, sha256, last error."""
    path = state / "queue.db"
    if not path.is_file():
        raise BridgeError(f"{path}: no upload queue here")
    queue = UploadQueue(path)
    table = Table("bag", "state", "pieces", "prio", "tags", "sha256", "attempts", "last error")
    for e in queue.all():
        shipped = queue.pieces_of(e.name) if e.pieces else []
        done = sum(1 for p in shipped if p.state == "confirmed")
        pieces = f"{done}/{len(shipped)}" if e.pieces else "-"
        table.add_row(
            e.name, e.state, pieces, str(e.priority), ",".join(e.tags), (e.sha256 or "")[:12], str(e.attempts),
            e.last_error,
        )  # fmt: skip
    queue.close()
    Console(width=200).print(table)
