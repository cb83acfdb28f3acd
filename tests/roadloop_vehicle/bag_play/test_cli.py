"""`roadloop bag play`'s command line: `--clock [HZ]` like ros2 bag play, bad options as one line and exit 2."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from roadloop_vehicle.bag_play.cli import DEFAULT_CLOCK_HZ, OptionalClockValue

ROADLOOP = shutil.which("roadloop", path=str(Path(sys.executable).parent)) or "roadloop"


@pytest.mark.parametrize(
    ("args", "clock", "loop"),
    [
        (["BAG"], None, False),
        (["BAG", "--clock"], DEFAULT_CLOCK_HZ, False),
        (["BAG", "--clock", "--loop"], DEFAULT_CLOCK_HZ, True),
        (["--clock", "BAG"], DEFAULT_CLOCK_HZ, False),
        (["--clock", "10", "BAG", "--loop"], 10.0, True),
        (["BAG", "--clock=25"], 25.0, False),
    ],
)
def test_clock_takes_an_optional_frequency(args: list[str], clock: float | None, loop: bool) -> None:
    seen: dict[str, object] = {}
    app = typer.Typer()

    def play(
        bag: str,
        clock: float | None = typer.Option(None, "--clock"),
        loop: bool = typer.Option(False, "--loop"),
    ) -> None:
        seen.update(bag=bag, clock=clock, loop=loop)

    app.command(cls=OptionalClockValue)(play)
    res = CliRunner().invoke(app, args)
    assert res.exit_code == 0, res.output
    assert seen == {"bag": "BAG", "clock": clock, "loop": loop}


@pytest.mark.parametrize(
    ("args", "needle"),
    [
        (["--rate", "0"], "--rate 0.0: must be a number > 0"),
        (["--clock", "0"], "--clock 0.0: must be a frequency > 0 Hz"),
        (["--topics", "/nope"], "--topics /nope: no such topic in the bag"),
        (["--start-offset", "60"], "--start-offset 60.0 s is past the bag's end (4.531 s)"),
    ],
)
def test_bad_options_are_one_line_exit_2(conformance_dir: Path, args: list[str], needle: str) -> None:
    env = {k: v for k, v in os.environ.items() if k != "ROADLOOP_DEBUG"}
    bag = str(conformance_dir / "mcap" / "talker")
    res = subprocess.run([ROADLOOP, "bag", "play", bag, *args], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("roadloop: error: ") and needle in lines[0], res.stderr


@pytest.mark.needs("rclpy")  # rclpy installed, its libraries not found
def test_without_ros_libraries_is_one_line_exit_2(conformance_dir: Path) -> None:
    """rclpy's C extension cannot load its libraries (the venv's LD_LIBRARY_PATH bootstrap skipped)."""
    env = {k: v for k, v in os.environ.items() if k not in ("LD_LIBRARY_PATH", "ROADLOOP_DEBUG")}
    env["_ROS_WHEELS_BOOTSTRAP_COMPLETE"] = "1"  # tells ros-wheels-bootstrapper the library path is already set
    bag = str(conformance_dir / "mcap" / "talker")
    res = subprocess.run([ROADLOOP, "bag", "play", bag], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 2, res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
    assert lines[0].startswith("roadloop: error: playing a bag needs ROS 2 (rclpy), which cannot be imported here: ")
    assert "cannot open shared object file" in lines[0]
