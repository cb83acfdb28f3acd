"""The bag lockstep's plan without ROS: it waits for exactly the commands replay computes, in replay's order.

The graph tests (tests/roadloop_vehicle/nodes/test_graph_matches_replay.py) play these plans through the
node processes; here the plan itself is checked against `replay_bag` on the same bags: every command replay
emits is one the lockstep awaits (a frame's, or a watchdog stop at its slot), and nothing else is awaited.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from roadloop_core.bag import BagWriter, open_bag
from roadloop_core.config import config_dir
from roadloop_core.registry import load_registry
from roadloop_core.stamps import header_stamp_ns
from roadloop_sim.over_ros.bag_lockstep import plan_bag
from roadloop_vehicle.params import load_vehicle_params
from roadloop_vehicle.replay.bag_replay import replay_bag
from roadloop_vehicle.safety.core import watchdog_slot_ns
from tests.support.vehicle_fixtures import vehicle_fixtures

pytestmark = pytest.mark.needs("roadloop_sim")

REG = load_registry(config_dir() / "topics.yaml")
PERIOD_NS = round(1e9 / REG["command_raw"].rate_hz)


@pytest.fixture(scope="module")
def signed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """(bundle, public key)"""
    fx = vehicle_fixtures()
    private, public = fx.keys(tmp_path_factory.mktemp("keys"))
    return fx.make_bundle(tmp_path_factory.mktemp("bundles") / "tiny-v1", private), public


def _bag(path: Path, **kwargs: Any) -> Path:
    with BagWriter(path, distro=REG.typestore) as w:
        for role in ("camera", "imu", "odometry", "route"):
            w.add_topic(REG[role].name, REG[role].type, REG[role].qos)
        for topic, ts, msg in vehicle_fixtures().drive_messages(REG, **kwargs):
            w.write_msg(topic, ts, msg)
    return path


def _replayed_stamps(bag: Path, signed: tuple[Path, Path], out: Path) -> list[int]:
    params = load_vehicle_params(config_dir() / "vehicle.yaml")
    replay_bag(bag, out, signed[0], params=params, public_key=signed[1])
    with open_bag(out) as b:
        return [header_stamp_ns(b.decode(r)) for r in b.messages([REG["command"].name])]


@pytest.mark.parametrize(
    "drive",
    [
        {"seconds": 4.5, "camera_gap": (1.5, 3.0)},  # stops from the start, in the gap, then recovery
        {"seconds": 2.0, "skip_roles": ("route",)},  # no frame ever completes: the watchdog alone
    ],
)
def test_the_plan_awaits_every_command_replay_makes(
    tmp_path: Path, signed: tuple[Path, Path], drive: dict[str, Any]
) -> None:
    bag = _bag(tmp_path / "drive", **drive)
    params = load_vehicle_params(config_dir() / "vehicle.yaml")
    steps = plan_bag(bag, params)
    replayed = _replayed_stamps(bag, signed, tmp_path / "replay")
    assert [s for step in steps for s in step.awaits] == replayed
    stops = [s for s in steps if s.stop]
    assert len(stops) >= 10
    # a stop step sets /clock at its slot's own time, publishes nothing and awaits the stop stamped there
    assert all(s.awaits == [s.clock_ns] and not s.messages and watchdog_slot_ns(s.clock_ns, PERIOD_NS) == s.clock_ns
               for s in stops)  # fmt: skip
    clocks = [s.clock_ns for s in steps]
    assert clocks == sorted(clocks)  # /clock never steps back
    with open_bag(bag) as b:
        assert sum(len(s.messages) for s in steps) == b.info.message_count  # every input, once
    assert plan_bag(bag, params) == steps  # a pure function of the bag
