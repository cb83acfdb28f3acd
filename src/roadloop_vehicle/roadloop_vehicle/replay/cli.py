"""`roadloop replay BAG --bundle B --out OUTBAG`: the onboard pipeline over a recorded bag."""

from __future__ import annotations

import json
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from roadloop_core.config import config_dir
from roadloop_vehicle.params import load_vehicle_params
from roadloop_vehicle.replay.bag_replay import replay_bag, write_stats

__all__ = ["replay"]


def replay(
    bag: Path = typer.Argument(..., help="Input rosbag2 folder (mcap or sqlite3) with camera, odometry, route, ..."),
    bundle: Path = typer.Option(..., "--bundle", "-b", help="Model bundle folder (verified before use)."),
    out: Path = typer.Option(
        ..., "--out", "-o", help="Output bag: /planning/trajectory, /control/command, /diagnostics."
    ),
    stats: Path | None = typer.Option(None, "--stats", help="Write stats JSON here (frames, drops, latencies, RTF)."),
    realtime: bool = typer.Option(False, "--realtime", help="Pace input at the bag's own rate instead of max speed."),
    plot: Path | None = typer.Option(None, "--plot", help="PNG of the commands over time with the safety state."),
    params: Path | None = typer.Option(None, "--params", help="Vehicle parameters (default: config/vehicle.yaml)."),
    public_key: Path | None = typer.Option(
        None, "--public-key", help="Bundle signing key (default: drive_node public_key in the params)."
    ),
    distro: str | None = typer.Option(
        None,
        "--distro",
        help="ROS distro whose rosbag2 must read the output bag: humble (metadata version 5) or jazzy (version 9); "
        "default: the topic registry's typestore.",
    ),
) -> None:
    """Replay BAG through observation -> policy -> controller -> safety on the bag's clock.

    Deterministic: the same bag and bundle give a byte-identical output bag and the
    same deterministic stats (latencies and the real-time factor are measured, kept
    under "measured" in the stats and never in the bag).
    """
    vehicle = load_vehicle_params(params if params is not None else config_dir() / "vehicle.yaml")
    with Progress(
        TextColumn("replay"), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn(), transient=True
    ) as bar:
        task = bar.add_task("replay", total=None)

        def progress(done: int, total: int) -> None:
            if done % 50 == 0 or done == total:
                bar.update(task, completed=done, total=total)

        result = replay_bag(
            bag,
            out,
            bundle,
            params=vehicle,
            public_key=public_key,
            realtime=realtime,
            progress=progress,
            distro=distro,
        )
    if stats is not None:
        write_stats(result, stats)
    if plot is not None:
        from roadloop_core.registry import load_registry
        from roadloop_vehicle.replay.plot import plot_replay

        plot_replay(out, load_registry(vehicle.path(vehicle.drive.topics_config)), plot)
    d, m = result.deterministic, result.measured
    frame = m["latency_ms"]["frame"]
    typer.echo(
        f"{d['frames']} frames, {sum(d['drops'].values())} dropped, {d['fallbacks']} fallback(s); "
        f"frame p50 {frame['p50']:.2f} ms p99 {frame['p99']:.2f} ms; "
        f"real-time factor {m['realtime_factor']:.1f}x -> {out}"
    )
    if stats is None:
        typer.echo(json.dumps(d["drops"]))
