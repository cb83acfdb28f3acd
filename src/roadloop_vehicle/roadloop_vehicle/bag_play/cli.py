"""The `roadloop bag play` verb (contributed to `roadloop bag` via the `roadloop.bag_verbs` entry points).

Imports only typer at load time: rclpy is imported when a bag is actually played, so
`roadloop bag --help` works on machines without ROS 2.
"""

from __future__ import annotations

import math
import signal
import sys
from pathlib import Path
from typing import Any

import typer
from typer.core import TyperCommand

__all__ = ["OptionalClockValue", "play"]

DEFAULT_CLOCK_HZ = 40.0  # what `ros2 bag play --clock` publishes at when given no frequency


class OptionalClockValue(TyperCommand):
    """`--clock [HZ]` as `ros2 bag play` has it: a bare `--clock` means 40 Hz (typer options always take a value)."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:  # ctx: the click Context typer bundles
        out: list[str] = []
        for i, arg in enumerate(args):
            out.append(arg)
            if arg == "--clock" and not _is_number(args[i + 1] if i + 1 < len(args) else ""):
                out.append(str(DEFAULT_CLOCK_HZ))
        return super().parse_args(ctx, out)


def _is_number(text: str) -> bool:
    try:
        return math.isfinite(float(text))
    except ValueError:
        return False


def play(
    bag: Path = typer.Argument(..., help="Bag folder (with metadata.yaml), or a single .mcap/.db3 file."),
    rate: float = typer.Option(1.0, "--rate", "-r", help="Playback speed factor (2 = twice as fast)."),
    clock: float | None = typer.Option(
        None,
        "--clock",
        metavar="[HZ]",
        help=f"Publish /clock (rosgraph_msgs/Clock, bag time) at HZ, {DEFAULT_CLOCK_HZ:g} Hz without a value. "
        "Nodes with use_sim_time follow it.",
    ),
    topics: list[str] | None = typer.Option(
        None,
        "--topics",
        help="Play only these topics (repeat, or separate with commas). Default: all but service events.",
    ),
    loop: bool = typer.Option(False, "--loop", "-l", help="Start again from the beginning at the end, until stopped."),
    start_offset: float = typer.Option(0.0, "--start-offset", help="Start this many seconds into the bag."),
    delay: float = typer.Option(0.0, "--delay", "-d", help="Seconds to wait before the first message (discovery)."),
    wait_for_subscribers: bool = typer.Option(
        False,
        "--wait-for-subscribers",
        help="Before playing, wait until every played topic has a matched subscriber (then --delay).",
    ),
    topics_config: Path | None = typer.Option(
        None, "--topics-config", help="Topic registry giving the QoS of its topics (default config/topics.yaml)."
    ),
) -> None:
    """Publish a bag's recorded CDR bytes on the ROS 2 graph at the recorded timing (like `ros2 bag play`).

    Registry topics get the registry's QoS (sensor best-effort, commands reliable, latched transient-local).
    Other topics get the QoS their recorded publishers offered. Ctrl-C stops with exit 130, SIGTERM with 0.
    Needs rclpy: `make setup` installs ROS 2 Jazzy from PyPI.
    """
    from roadloop_core.config import config_dir
    from roadloop_core.registry import load_registry
    from roadloop_vehicle.bag_play.plan import PlayOptions, split_topic_args
    from roadloop_vehicle.bag_play.player import play_bag

    opts = PlayOptions(
        rate=rate,
        clock_hz=clock,
        topics=split_topic_args(topics),
        loop=loop,
        start_offset_s=start_offset,
        delay_s=delay,
        wait_for_subscribers=wait_for_subscribers,
    )
    registry = load_registry(topics_config or config_dir() / "topics.yaml")

    def log(text: str) -> None:
        print(text, file=sys.stderr, flush=True)

    result = play_bag(bag, registry, opts, log=log)
    how = f"stopped by {signal.Signals(result.stopped_by).name}" if result.stopped_by else "done"
    print(
        f"{how}: played {result.messages} messages on {len(result.topics)} topic(s) in {result.wall_s:.2f} s "
        f"(rate {rate:g}, {result.passes} pass(es))",
        flush=True,
    )
    if result.exit_code:
        raise typer.Exit(result.exit_code)


play.typer_command_cls = OptionalClockValue  # type: ignore[attr-defined]  # read by roadloop's verb loader
