"""`roadloop data build|info`: thin CLI over roadloop_cluster.data.build and the index."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from roadloop_cluster.data.build import BuildOptions, build_dataset
from roadloop_cluster.data.check import BagReport, check_bag, registry_findings, split_finding
from roadloop_cluster.data.config import load_dataset_config
from roadloop_cluster.data.discover import find_bags
from roadloop_cluster.data.errors import DataError
from roadloop_core.config import config_dir
from roadloop_core.contract.dataset_index import read_dataset_index
from roadloop_core.fsio import atomic_write_json
from roadloop_core.registry import load_registry

__all__ = ["app"]

app = typer.Typer(
    name="data",
    help="Check rosbags against the dataset config, build training datasets from them (shards + index.json), "
    "and inspect them.",
    no_args_is_help=True,
    add_completion=False,
)


_STYLE = {"error": "red", "warning": "yellow", "info": "dim"}


def _print_report(con: Console, report: BagReport) -> None:
    con.print(f"[bold]{escape(str(report.path))}[/] ({report.duration_s:.1f} s)")
    t = Table(show_edge=False, pad_edge=False)
    for col in ("role", "topic", "type", "messages", "rate", "read as"):
        t.add_column(col)
    for role, name, typename, count, rate, key in report.topics:
        t.add_row(role, name, typename, str(count), "-" if rate is None else f"{rate:.3g} Hz", key or "(not read)")
    if report.topics:
        con.print(t)
    for f in report.findings:
        con.print(f"  [{_STYLE[f.severity]}]{f.severity}[/]: {escape(f.text())}")
    if not report.findings:
        con.print("  [green]no findings[/]")


@app.command()
def check(
    inputs: Annotated[list[Path], typer.Argument(help="Bag folders or folders of bags (searched recursively).")],
    config: Annotated[
        Path | None, typer.Option("--config", "-c", help="Dataset config (default: config/dataset.yaml).")
    ] = None,
    topics: Annotated[
        Path | None, typer.Option("--topics", help="Topic registry (default: config/topics.yaml).")
    ] = None,
    json_out: Annotated[Path | None, typer.Option("--json", help="Also write every finding to this JSON file.")] = None,
) -> None:
    """Check bags before building: every missing topic, type mismatch, rate, gap, clock and frame-convention
    problem (IMU axes and units, odometry heading and twist frame, steering scale), each with what to change.

    `data build` runs the same checks and skips a bag with an error (listing all of them). Exit code 1
    when any bag has an error, 0 otherwise (warnings and notes do not fail).
    """
    con = Console()
    cfg_path = config or config_dir() / "dataset.yaml"
    reg_path = topics or config_dir() / "topics.yaml"
    cfg, reg = load_dataset_config(cfg_path), load_registry(reg_path)
    setup = registry_findings(cfg, reg)
    for f in setup:
        con.print(f"[red]error[/]: {escape(f.text())}")
    bags = find_bags(inputs)
    if not bags:
        raise DataError(f"no rosbag2 bags found under {', '.join(map(str, inputs))}")
    reports = [] if setup else [check_bag(b, cfg, reg) for b in bags]
    for r in reports:
        _print_report(con, r)
    usable = [r.duration_s for r in reports if not r.errors]
    split = split_finding(cfg, usable) if usable else None  # nothing to split when no bag is usable
    if split is not None:
        con.print(f"[{_STYLE[split.severity]}]{split.severity}[/]: {escape(split.text())}")
    errors = len(setup) + sum(len(r.errors) for r in reports)
    warnings = sum(len(r.warnings) for r in reports) + (split is not None and split.severity == "warning")
    refused = sum(1 for r in reports if r.errors)
    if json_out is not None:
        atomic_write_json(
            json_out,
            {
                "config": str(cfg_path),
                "topics": str(reg_path),
                "setup": [vars(f) for f in setup],
                "split": vars(split) if split is not None else None,
                "bags": [
                    {"path": str(r.path), "duration_s": r.duration_s, "findings": [vars(f) for f in r.findings]}
                    for r in reports
                ],
            },
            indent=1,
        )
    verdict = (
        f"{errors} error(s), {warnings} warning(s) in {len(bags)} bag(s)"
        + (f": `data build` would skip {refused} of them" if refused else "")
        + ("" if errors else ": ready to build")
    )
    con.print(("[red]" if errors else "[green]") + escape(verdict) + "[/]")
    if errors:
        raise typer.Exit(1)


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

    Features (image, ego state, route target, ego history) come from the same code the vehicle runs;
    labels are the future ego waypoints and the recorded command (build.labels). Splits are by bag, or
    by time blocks inside a single bag. Every bag goes through the checks of `data check`: a bag with an
    error is skipped and listed with all of them; if none is usable the command exits with code 2.
    """
    console = Console(stderr=True)
    opts = BuildOptions(config, topics, workers, overwrite, progress=not quiet)
    index = build_dataset(inputs, out, opts, log=lambda m: console.print(f"[yellow]{m}[/]"))
    counts = ", ".join(f"{name} {s.count}" for name, s in index.splits.items())
    typer.echo(
        f"dataset {index.dataset_id} at {out}: {index.count} samples ({counts}) "
        f"from {len(index.sources)} bag(s), {len(index.skipped)} skipped"
    )


def _has_block(index: Any, source: int, split: str) -> bool:
    return any(b.source == source and b.split == split and b.samples for b in index.time_blocks)


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
    route = {
        "topic": f"route target from role {obs.route}",
        "hindsight": "HINDSIGHT route target (the logged future path, not a planner's route)",
        "none": "no route input",
    }[obs.route_source]
    history = f", ego history {obs.ego_history_steps} x {obs.ego_history_dt_s:g} s" if obs.ego_history_steps else ""
    con.print(f"[bold]dataset[/] {index.dataset_id}  ({index.format}, {mode}, {route}{history})")
    con.print(f"labels: {obs.label_horizon} waypoints every {obs.label_dt_s} s")
    for name, source in index.array_sources.items():
        con.print(f"  {name}: {escape(source)}")
    if index.split_by == "time":
        con.print(
            f"splits: by time blocks inside the bags (at least {index.split_gap_s:g} s between samples of different "
            "splits: label horizon + ego history, so no label covers what the other split sees)"
        )
    else:
        con.print("splits: by bag (a bag's split is drawn from its content hash)")
    t = Table(title="splits")
    for col in ("split", "samples", "shards", "bags"):
        t.add_column(col)
    for name, split in index.splits.items():
        bags = sum(1 for i, s in enumerate(index.sources) if s.split == name or _has_block(index, i, name))
        t.add_row(name, str(split.count), str(len(split.shards)), str(bags))
    con.print(t)
    if not index.splits.get("val") or not index.splits["val"].count:
        con.print(
            "[yellow]no val split: `roadloop train` needs one (build.val_fraction > 0; one bag: split_by time)[/]"
        )
    if index.time_blocks:
        t = Table(title="time blocks")
        for col in ("bag", "split", "from s", "to s", "samples"):
            t.add_column(col)
        for b in index.time_blocks:
            src = index.sources[b.source]
            first = min(x.start_ns for x in index.time_blocks if x.source == b.source)
            start, end = (b.start_ns - first) / 1e9, (b.end_ns - first) / 1e9
            t.add_row(Path(src.path).name, b.split, f"{start:.1f}", f"{end:.1f}", str(b.samples))
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
