"""`roadloop export`: a finished training run -> a signed model bundle for the vehicle."""

from __future__ import annotations

from pathlib import Path

import typer

from roadloop_cluster.export.bundle import export_bundle

__all__ = ["export"]


def export(
    run: Path = typer.Argument(..., help="Run folder written by `roadloop train` (model.pt, run.json, metrics.json)."),
    out: Path = typer.Option(
        ..., "--out", help="Bundle folder to create (must not exist; appears only when complete)."
    ),
    sign_key: Path = typer.Option(..., "--sign-key", help="Ed25519 private key (PEM) from `roadloop keys gen`."),
    name: str = typer.Option("roadloop-policy", "--name", help="Model name in the manifest."),
    version: int = typer.Option(None, "--version", help="Manifest version (default: seconds since the epoch)."),
    data: Path = typer.Option(None, "--data", help="Dataset for the parity check (default: the run's dataset)."),
    samples: int = typer.Option(16, "--samples", help="Validation samples in the torch/onnxruntime parity check."),
    tol: float = typer.Option(
        1e-4, "--tol", help="Largest allowed |onnx - torch| on any output, times max(1, |torch's value|)."
    ),
) -> None:
    """Export RUN to ONNX (opset 17, batch 1), check parity against torch with onnxruntime, sign a bundle.

    The export fails (exit 2) when any output differs from torch by more than --tol on a validation sample.
    """
    m = export_bundle(run, out, sign_key, name=name, version=version, data=data, parity_count=samples, tol=tol)
    parity = m.metrics["parity"]
    typer.echo(
        f"bundle {out}: {m.name} v{m.version}, parity max |onnx - torch| = {parity['max_abs_diff']:.2e} "
        f"on {parity['samples']} validation samples; verify with: roadloop bundle verify {out} --public-key PUB"
    )
