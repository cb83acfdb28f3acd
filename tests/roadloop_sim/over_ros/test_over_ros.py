"""`roadloop sim eval --over-ros`: the real drive_node and safety_node processes drive the simulator over DDS.

The graph is this test session's own (tests/rosgraph.py: `ROS_DOMAIN_ID` per session, localhost
discovery); the nodes are their console scripts, started by the simulator per episode. In lockstep
on /clock the same seed must give the same episode over ROS as in-process: the same driving score,
route completion, end and infractions, and the same ego path (the report's 0.1 m points).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from roadloop_core.config import config_dir
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.registry import load_registry
from tests.support.vehicle_fixtures import vehicle_fixtures

pytestmark = pytest.mark.needs("rclpy", "ackermann_msgs", "highway_env")


def _eval(cfg: Path, bundle: Path, over_ros: bool) -> dict[str, Any]:
    from roadloop_sim.evaluate import evaluate
    from roadloop_sim.over_ros.config import load_over_ros_config
    from roadloop_sim.scenarios import load_scenarios
    from roadloop_vehicle.params import load_vehicle_params

    return evaluate(
        f"bundle:{bundle}",
        episodes=1,
        seed=3,
        scenario_set=load_scenarios(cfg / "scenarios.yaml"),
        registry=load_registry(cfg / "topics.yaml"),
        vehicle=load_vehicle_params(cfg / "vehicle.yaml"),
        progress=False,
        over_ros=load_over_ros_config(cfg / "scenarios.yaml") if over_ros else None,
    )


def test_the_node_processes_drive_the_same_episode_over_ros_as_in_process(
    ros_graph: Any, vehicle_config: tuple[Path, Path]
) -> None:
    cfg, bundle = vehicle_config
    local = _eval(cfg, bundle, over_ros=False)
    ros = _eval(cfg, bundle, over_ros=True)
    a, b = local["episodes"][0], ros["episodes"][0]
    assert ros["over_ros"] is True and "over_ros" not in local
    assert a["end_reason"] == b["end_reason"] == "timeout"
    assert a["route_completion"] > 0  # it drove
    same = ("driving_score", "route_completion", "infractions", "path", "mean_speed")
    assert {k: b[k] for k in same} == {k: a[k] for k in same}


def test_a_bundle_the_drive_node_refuses_is_one_error_with_its_reason(
    ros_graph: Any, vehicle_config: tuple[Path, Path], tmp_path: Path
) -> None:
    from roadloop_sim.errors import DriverError

    cfg, _ = vehicle_config
    other_key, _ = vehicle_fixtures().keys(tmp_path / "other-keys")
    observation = ObservationSpec.from_config(config_dir() / "dataset.yaml")
    foreign = vehicle_fixtures().make_bundle(tmp_path / "foreign-v1", other_key, observation=observation)
    with pytest.raises(DriverError, match=r"^drive_node: model refused .*signature"):
        _eval(cfg, foreign, over_ros=True)
