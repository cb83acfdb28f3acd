"""`roadloop keys ...` and `roadloop bundle ...` verbs."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from roadloop_core.bundle.keys import generate_keypair
from roadloop_core.bundle.store import read_manifest, verify_bundle

__all__ = ["bundle_app", "keys_app"]

keys_app = typer.Typer(help="Ed25519 signing keys for model bundles.", no_args_is_help=True)
bundle_app = typer.Typer(help="Inspect and verify signed model bundles.", no_args_is_help=True)


@keys_app.command("gen")
def keys_gen(
    out: Path = typer.Option(..., "--out", help="Folder for <name>.key (private, 0600) and <name>.pub (public)."),
    name: str = typer.Option("signing", "--name", help="Base name of the key files."),
    overwrite: bool = typer.Option(False, "--overwrite", help="Replace an existing key pair of that name."),
) -> None:
    """Generate an Ed25519 key pair: the cluster signs with the .key, vehicles verify with the .pub."""
    priv, pub = generate_keypair(out, name, overwrite=overwrite)
    typer.echo(f"private key: {priv}\npublic key:  {pub}")


@bundle_app.command("verify")
def bundle_verify(
    bundle: Path = typer.Argument(..., help="Bundle folder (policy.onnx, manifest.json, manifest.sig)."),
    public_key: Path = typer.Option(..., "--public-key", "-k", help="PEM public key the vehicle trusts."),
) -> None:
    """Check the signature and every file's sha256; exit 2 with the reason if anything is off."""
    manifest = verify_bundle(bundle, public_key)
    typer.echo(f"ok: {manifest.name} v{manifest.version} ({len(manifest.files)} files verified)")


@bundle_app.command("show")
def bundle_show(
    bundle: Path = typer.Argument(..., help="Bundle folder."),
    as_json: bool = typer.Option(False, "--json", help="Print the manifest as JSON."),
) -> None:
    """Print a bundle's manifest (unverified: use `verify` before trusting it)."""
    manifest = read_manifest(bundle)
    if as_json:
        typer.echo(manifest.to_json_bytes().decode(), nl=False)
        return
    typer.echo(f"{manifest.name} v{manifest.version}  created {manifest.created}  dataset {manifest.dataset_id}")
    for t in manifest.inputs:
        typer.echo(f"  in  {t.name:<14} {t.dtype} {list(t.shape)}")
    for t in manifest.outputs:
        typer.echo(f"  out {t.name:<14} {t.dtype} {list(t.shape)}")
    if manifest.metrics:
        typer.echo("  metrics: " + json.dumps(manifest.metrics, sort_keys=True))
