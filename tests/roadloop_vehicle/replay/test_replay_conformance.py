"""Real rosbag2 bags (written by ROS 2's own tools) that hold no driving data: replay refuses each with
one clear line naming the bag, never a traceback."""

from __future__ import annotations

from pathlib import Path

import pytest

from roadloop_core.config import config_dir
from roadloop_core.errors import RoadloopError
from roadloop_vehicle.params import load_vehicle_params
from roadloop_vehicle.replay import replay_bag

VEHICLE = load_vehicle_params(config_dir() / "vehicle.yaml")  # what the car runs on


def bags(root: Path) -> list[Path]:
    return sorted(p for p in root.glob("*/*") if p.is_dir())


def test_conformance_bags_are_refused_clearly(
    conformance_dir: Path, bundle: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    found = bags(conformance_dir)
    assert found, f"no bags under {conformance_dir}"
    for i, bag in enumerate(found):
        with pytest.raises(RoadloopError) as exc:
            replay_bag(bag, tmp_path / f"out{i}", bundle, params=VEHICLE, public_key=keypair[1])
        message = str(exc.value)
        assert "\n" not in message and str(bag) in message, message
        assert not (tmp_path / f"out{i}").exists()
