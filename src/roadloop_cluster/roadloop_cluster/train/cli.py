"""`roadloop train`: the torchrun-launched DDP trainer."""

from __future__ import annotations

from pathlib import Path

import typer

from roadloop_cluster.train.launch import launch
from roadloop_core.config import config_dir

__all__ = ["train"]


def train(
    data: Path = typer.Option(..., "--data", help="Dataset folder (with index.json) from `roadloop data build`."),
    out: Path = typer.Option(..., "--out", help="Run folder: checkpoints/, tb/, model.pt, run.json, metrics.json."),
    config: Path = typer.Option(None, "--config", help="Training config (default: config/train.yaml)."),
    nproc: int = typer.Option(1, "--nproc", help="Ranks on this machine (torchrun --nproc-per-node)."),
    max_restarts: int = typer.Option(
        3, "--max-restarts", help="Times torchrun restarts the group after a rank dies (resuming from checkpoint)."
    ),
    nnodes: str = typer.Option(
        None, "--nnodes", help="Multi-machine: MIN:MAX nodes (c10d rendezvous); omit for one machine (standalone)."
    ),
    rdzv_endpoint: str = typer.Option(None, "--rdzv-endpoint", help="Multi-machine: HOST:PORT every node joins."),
    rdzv_id: str = typer.Option("roadloop", "--rdzv-id", help="Multi-machine: job id shared by the nodes."),
    epochs: int = typer.Option(None, "--epochs", min=1, help="Override the config's run.epochs."),
    batch_size: int = typer.Option(
        None, "--batch-size", min=1, help="Override the config's run.batch_size (global, split over the ranks)."
    ),
    init_from: Path = typer.Option(
        None,
        "--init-from",
        help="Fine-tune: start from this run's weights (RUN folder or its model.pt), e.g. production's.",
    ),
) -> None:
    """Train the driving policy with DDP under torchrun; resumes from OUT/checkpoints/latest when present.

    The config is checked against the dataset before any process starts. A rank that dies makes
    torchrun restart the group, which continues from the last checkpoint (up to --max-restarts).
    """
    cfg_path = config if config is not None else config_dir() / "train.yaml"
    m = launch(cfg_path, data, out, nproc, max_restarts, nnodes, rdzv_endpoint, rdzv_id, epochs=epochs,
               batch_size=batch_size, init_from=init_from)  # fmt: skip
    val, cv, ego = m["val"], m["baselines"]["constant_velocity"], m["baselines"]["ego_mlp"]
    typer.echo(f"trained {m['steps']} steps on {m['world_size']} rank(s), {m['samples_per_s']:.0f} samples/s")
    for key in ("ade", "fde", "l2_1s", "l2_2s", "l2_3s"):
        if key in val:
            typer.echo(
                f"  {key:<6} policy {val[key]:7.3f}   constant-velocity {cv[key]:7.3f}   ego-MLP {ego[key]:7.3f}"
            )
    typer.echo(f"run folder: {out}  (export with: roadloop export {out} --out BUNDLE --sign-key KEY)")
