"""`roadloop replay BAG --bundle B --out OUTBAG`: the onboard pipeline over a recorded bag."""

from __future__ import annotations

import json
import math
from pathlib import Path

import typer
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from roadloop_core.config import config_dir
from roadloop_vehicle.errors import ReplayError
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
    swap: list[str] | None = typer.Option(
        None,
        "--swap",
        metavar="SECONDS=BUNDLE",
        help="Swap in BUNDLE before the first frame stamped SECONDS or more after the bag's start, as the car's "
        "model manager does when `current` changes (repeatable): replays a recorded model swap.",
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
    under "measured" in the stats and never in the bag). Exit code 1 (after writing
    everything) when frames never left INIT or the policy never drove.
    """
    swaps = [_swap(text) for text in swap or []]
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
            swaps=swaps,
        )
    if stats is not None:
        write_stats(result, stats)
    if plot is not None:
        from roadloop_core.registry import load_registry
        from roadloop_vehicle.replay.plot import plot_replay

        plot_replay(out, load_registry(vehicle.path(vehicle.drive.topics_config)), plot)
    d, m = result.deterministic, result.measured
    frame = m["latency_ms"]["frame"]
    active = d["states"].get("active", 0)
    typer.echo(
        f"{d['frames']} frames ({active} active, {d['init_frames']} in INIT), {sum(d['drops'].values())} dropped, "
        f"{d['fallbacks']} fallback(s); frame p50 {frame['p50']:.2f} ms p99 {frame['p99']:.2f} ms; "
        f"real-time factor {m['realtime_factor']:.1f}x -> {out}"
    )
    if stats is None:
        typer.echo(json.dumps(d["drops"]))
    for problem in d["problems"]:
        typer.echo(f"FAULT: {problem} (monitored: {', '.join(d['monitored_roles'])})", err=True)
    if d["problems"]:
        raise typer.Exit(1)


def _swap(text: str) -> tuple[float, Path]:
    at, sep, folder = text.partition("=")
    try:
        seconds = float(at)
    except ValueError:
        seconds = math.nan
    if not sep or not math.isfinite(seconds) or seconds < 0 or not folder:
        raise ReplayError(f"--swap {text!r}: expected SECONDS=BUNDLE (seconds >= 0 after the bag's start)")
    if not Path(folder).is_dir():
        raise ReplayError(f"--swap {text!r}: {folder}: no such bundle folder")
    return seconds, Path(folder)
