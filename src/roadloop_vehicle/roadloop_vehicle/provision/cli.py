"""`roadloop vehicle provision`: one command from a fresh car to one that drives (see provision/core.py)."""

from __future__ import annotations

import socket
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console

from roadloop_core.config import config_dir
from roadloop_core.hub_client import HubClient, read_token
from roadloop_vehicle.errors import ProvisionError
from roadloop_vehicle.provision.core import ProvisionRequest, provision

__all__ = ["app"]

app = typer.Typer(help="Set up a car: its config folder, the fleet's key, its hub token, the first model.")


@app.callback()
def _group() -> None:
    """Vehicle set-up commands."""


@app.command("provision")
def provision_cmd(
    hub: Annotated[str, typer.Option(help="Hub base URL, e.g. https://hub.example.org.")],
    public_key: Annotated[
        Path, typer.Option(help="The fleet's Ed25519 public key (PEM), from the fleet's operators, not from the hub.")
    ],
    out: Annotated[Path, typer.Option(help="The car's config folder to write (created; rerunning updates it).")],
    token: Annotated[str | None, typer.Option(help="This car's hub token (--token-file keeps it out of argv).")] = None,
    token_file: Annotated[Path | None, typer.Option(help="File holding this car's hub token.")] = None,
    vehicle: Annotated[str | None, typer.Option(help="The car's name (default: host name).")] = None,
    channel: Annotated[str, typer.Option(help="Registry channel the car follows.")] = "production",
    models: Annotated[Path | None, typer.Option(help="Models folder (default OUT/models).")] = None,
    template: Annotated[
        Path | None, typer.Option(help="Config folder to start from (default: the installed config/).")
    ] = None,
    require_model: Annotated[
        bool, typer.Option("--require-model", help="Exit 2 when the channel has no release yet.")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print provisioned.json instead of the summary.")] = False,
) -> None:
    """Write OUT/vehicle.yaml, bridge.yaml, keys/signing.pub, hub.token; pull, verify and load the current model."""
    if (token is None) == (token_file is None):
        raise ProvisionError("give exactly one of --token and --token-file")
    secret = token if token is not None else read_token(token_file)  # type: ignore[arg-type]
    req = ProvisionRequest(
        hub_url=hub.rstrip("/"),
        token=secret.strip(),
        public_key=public_key,
        out=out,
        template=template if template is not None else config_dir(),
        vehicle=vehicle or socket.gethostname().split(".")[0],
        channel=channel,
        models_dir=models,
    )
    with HubClient(req.hub_url, req.token) as client:
        result = provision(req, client)
    if as_json:
        typer.echo((result.out / "provisioned.json").read_text().rstrip())
    else:
        con = Console()
        con.print(f"provisioned {req.vehicle} in {result.out}")
        con.print(f"  fleet key sha256 {result.key_sha256}")
        if result.has_model:
            con.print(f"  model {result.model} ({result.action}, signature and hashes verified, loaded)")
        else:
            con.print(f"  [yellow]no model yet[/]: {result.reason}; the nodes start and hold a controlled stop")
        vy, by = result.files["vehicle.yaml"], result.files["bridge.yaml"]
        con.print(f"drive:  ros2 launch roadloop_vehicle vehicle.launch.py params_file:={vy}", soft_wrap=True)
        con.print(
            f"bridge: roadloop bridge run --config {by} --hub {req.hub_url} --token-file {result.files['hub.token']} "
            f"--state {result.out / 'bridge-state'} --watch RECORD_DIR",
            soft_wrap=True,
        )
    if require_model and not result.has_model:
        raise ProvisionError(f"--require-model: channel {req.channel} has no release ({result.reason})")
