"""`roadloop engine build BUNDLE`: build (or find cached) the TensorRT engine for a bundle on this GPU."""

from __future__ import annotations

from pathlib import Path

import typer

from roadloop_vehicle.errors import VehicleError

__all__ = ["app"]

app = typer.Typer(
    help="TensorRT engines for model bundles (built on the vehicle, cached per GPU).", no_args_is_help=True
)


@app.callback()
def _engine() -> None:
    """TensorRT engines for model bundles (built on the vehicle, cached per GPU)."""


@app.command()
def build(
    bundle: Path = typer.Argument(..., help="Model bundle folder (holds policy.onnx)."),
    precision: str = typer.Option("fp16", "--precision", help="fp16 (default, faster) or fp32."),
    cache_dir: Path = typer.Option(
        Path("~/.cache/roadloop/engines"),
        "--cache-dir",
        help="Engine cache folder (key: onnx sha256, TRT, GPU, precision).",
    ),
) -> None:
    """Build the TensorRT 10 engine for BUNDLE's policy.onnx, or report the cached one."""
    from roadloop_vehicle.runtime.engine_cache import load_or_build_engine

    if precision not in ("fp16", "fp32"):
        raise VehicleError(f"--precision: expected fp16 or fp32, got {precision!r}")
    onnx_path = bundle / "policy.onnx"
    if not onnx_path.is_file():
        raise VehicleError(f"{bundle}: no policy.onnx (is this a model bundle?)")
    from rich.console import Console

    # A TensorRT build takes minutes on an embedded GPU and reports no progress of its own.
    with Console(stderr=True).status(f"building/looking up the {precision} TensorRT engine for {onnx_path} ..."):
        _, path, built = load_or_build_engine(onnx_path.read_bytes(), precision, cache_dir, str(onnx_path))
    typer.echo(f"{'built' if built else 'cached'}: {path}")
