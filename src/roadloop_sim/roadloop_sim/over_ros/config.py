"""OverRosConfig: the `over_ros:` section of config/scenarios.yaml (how long the simulator waits on the nodes)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from roadloop_core.config import dataclass_from_dict, load_yaml
from roadloop_sim.errors import ScenarioError

__all__ = ["OverRosConfig", "load_over_ros_config"]


@dataclass(frozen=True)
class OverRosConfig:
    # Wall-clock deadlines only: the simulation itself waits in lockstep, so a slow machine makes an
    # episode slower, never different. A deadline that passes means a node is dead or hung.
    startup_timeout_s: float = 180.0  # node processes started -> model loaded and every topic matched
    command_deadline_s: float = 60.0  # a tick's sensor messages published -> its /control/command received
    node_stop_timeout_s: float = 30.0  # SIGTERM -> exit, then SIGKILL

    def __post_init__(self) -> None:
        for name in ("startup_timeout_s", "command_deadline_s", "node_stop_timeout_s"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name} must be > 0")


def load_over_ros_config(path: Path) -> OverRosConfig:
    """The `over_ros:` mapping of a scenarios file; absent: the defaults above."""
    data = load_yaml(path).get("over_ros") or {}
    if not isinstance(data, dict):
        raise ScenarioError(f"{path}: over_ros: expected a mapping")
    return dataclass_from_dict(OverRosConfig, dict(data), f"{path}: over_ros")
