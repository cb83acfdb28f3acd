"""`roadloop data build|info`: thin CLI over roadloop_cluster.data.build and the index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.table import Table

from roadloop_cluster.data.build import BuildOptions, build_dataset
from roadloop_core.contract.dataset_index import read_dataset_index

__all__ = ["app"]

app = typer.Typer(
    name="data",
    help="Build training datasets from rosbags (shards + index.json) and inspect them.",
    no_args_is_help=True,
    add_completion=False,
)


@app.command()
def build(
    inputs: Annotated[
        list[Path],
        typer.Argument(help="Bag folders, folders of bags (searched recursively) or a hub blob store."),
    ],
    out: Annotated[Path, typer.Option("--out", "-o", help="Dataset folder to create (appears only when complete).")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Dataset config (default: config/dataset.yaml).")
    ] = None,
    topics: Annotated[
        Path | None, typer.Option("--topics", help="Topic registry (default: config/topics.yaml).")
    ] = None,
    workers: Annotated[
        int | None, typer.Option("--workers", "-j", help="Processes over bags (default: config build.workers).")
    ] = None,
    overwrite: Annotated[bool, typer.Option("--overwrite", help="Replace an existing dataset at --out.")] = False,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="No progress bars.")] = False,
) -> None:
    """Turn bags into time-synchronised, labelled samples in fixed-size shards with an index.

    Features (image, ego state, route target) come from the same code the vehicle runs;
    labels are the future ego waypoints and the recorded command. Splits are by bag.
    Bad bags are skipped and listed; if none is usable the command exits with code 2.
    """
    console = Console(stderr=True)
    opts = BuildOptions(config, topics, workers, overwrite, progress=not quiet)
    index = build_dataset(inputs, out, opts, log=lambda m: console.print(f"[yellow]{m}[/]"))
    counts = ", ".join(f"{name} {s.count}" for name, s in index.splits.items())
    typer.echo(
        f"dataset {index.dataset_id} at {out}: {index.count} samples ({counts}) "
        f"from {len(index.sources)} bag(s), {len(index.skipped)} skipped"
    )


def _fmt(values: Any) -> str:
    if isinstance(values, list) and values and isinstance(values[0], list):
        return "[" + ", ".join(_fmt(v) for v in values[:2]) + (", ..." if len(values) > 2 else "") + "]"
    if isinstance(values, list):
        return "[" + ", ".join(f"{v:.3g}" for v in values) + "]"
    return str(values)


@app.command()
def info(
    dataset: Annotated[Path, typer.Argument(help="Dataset folder (holding index.json).")],
    plot: Annotated[
        Path | None, typer.Option("--plot", help="Also draw splits, drops, waypoints and ego state to this PNG.")
    ] = None,
) -> None:
    """Show counts per split, drop reasons, normalisation statistics and source bags."""
    index = read_dataset_index(dataset)
    if plot is not None:
        from roadloop_cluster.data.plots import plot_dataset

        typer.echo(f"plot: {plot_dataset(dataset, index, plot)}")
    con = Console()
    obs = index.observation
    mode = "state-only" if obs.state_only else f"camera {obs.image_width}x{obs.image_height}"
    con.print(f"[bold]dataset[/] {index.dataset_id}  ({index.format}, {mode})")
    con.print(f"labels: {obs.label_horizon} waypoints every {obs.label_dt_s} s")
    t = Table(title="splits")
    for col in ("split", "samples", "shards", "bags"):
        t.add_column(col)
    for name, split in index.splits.items():
        bags = sum(1 for s in index.sources if s.split == name)
        t.add_row(name, str(split.count), str(len(split.shards)), str(bags))
    con.print(t)
    t = Table(title="dropped frames")
    t.add_column("reason")
    t.add_column("frames")
    for reason, n in index.drops.items():
        t.add_row(reason, str(n))
    con.print(t)
    t = Table(title=f"statistics ({index.stats_split} split)")
    for col in ("array", "mean", "std"):
        t.add_column(col)
    for name, st in index.stats.items():
        t.add_row(name, _fmt(st.mean), _fmt(st.std))
    con.print(t)
    t = Table(title="sources")
    for col in ("bag", "split", "samples", "sha256"):
        t.add_column(col)
    for s in index.sources:
        t.add_row(s.path, s.split, str(s.samples), s.sha256[:16])
    con.print(t)
    for skipped in index.skipped:
        con.print(f"[yellow]skipped[/] {skipped.path}: {skipped.reason}")
