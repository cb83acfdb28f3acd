"""Typed configuration of `roadloop data build|check`: config/dataset.yaml (`observation:` + `build:` + `check:`)."""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roadloop_core.config import config_dir, dataclass_from_dict, dataclass_to_dict, load_yaml
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.errors import ConfigError

__all__ = ["SPLIT_BY", "BuildConfig", "CheckConfig", "DatasetConfig", "LabelConfig", "load_dataset_config"]

SPLIT_BY = ("auto", "bag", "time")
# Keys of earlier configs and where their value lives now.
_MOVED = {"command": "build.labels.command", "command_slop_s": "build.labels.slop_s"}


@dataclass(frozen=True)
class LabelConfig:
    """Where the labels come from: registry roles, read by their message type.

    The command label is the `drive` of an ackermann_msgs/AckermannDriveStamped role: what the car
    did (a vehicle status topic, the driver's command) -- its own role, never the command the stack
    publishes. Waypoint labels come from a nav_msgs/Odometry role (its logged future path: the
    pose at t + k dt in the ego frame at t) or a nav_msgs/Path role whose poses are the K waypoints
    in the ego frame (as /planning/trajectory carries them: an expert's plan).
    """

    command: str = "command"
    waypoints: str = "odometry"
    slop_s: float = 0.1  # the label message nearest the frame within this, else the frame is dropped
    # logged steering_angle / road-wheel angle: about 15 for a steering-wheel angle, negative if right is positive
    steering_ratio: float = 1.0
    # DAgger: a bag that records these roles' topics (`roadloop sim record --label-with-expert`: a policy drove
    # and the privileged expert labelled every state) takes its command and waypoint labels from them instead
    expert_command: str | None = None
    expert_waypoints: str | None = None

    def __post_init__(self) -> None:
        if self.slop_s <= 0:
            raise ValueError("slop_s must be > 0")
        if (self.expert_command is None) != (self.expert_waypoints is None):
            raise ValueError("expert_command and expert_waypoints are set together (or both null)")
        if not 0.05 <= abs(self.steering_ratio) <= 50.0:
            raise ValueError(
                "steering_ratio must be within [0.05, 50] in magnitude (negative: the logged sign is flipped)"
            )

    def roles(self) -> list[str]:
        return list(dict.fromkeys([self.command, self.waypoints]))

    def for_bag(self, topic_of: Mapping[str, str], bag_topics: Collection[str]) -> LabelConfig:
        """The labels of a bag with these topics: the expert's (DAgger) where it records both expert roles'
        topics (`topic_of`: role -> topic name), else these."""
        roles = (self.expert_command, self.expert_waypoints)
        if any(r is None or topic_of.get(r) not in bag_topics for r in roles):
            return self
        assert self.expert_command is not None and self.expert_waypoints is not None
        return dataclasses.replace(
            self, command=self.expert_command, waypoints=self.expert_waypoints, expert_command=None,
            expert_waypoints=None,
        )  # fmt: skip


@dataclass(frozen=True)
class BuildConfig:
    """How bags become shards; the observation parameters live in ObservationSpec."""

    labels: LabelConfig = field(default_factory=LabelConfig)
    shard_size: int = 1024
    val_fraction: float = 0.2
    split_salt: str = "roadloop"
    # bag: whole bags per split; time: blocks of split_block_s inside each bag (a gap of at least the label
    # horizon plus the ego history between blocks of different splits); auto: bag from two usable bags on
    split_by: str = "auto"
    split_block_s: float = 60.0
    workers: int = 0  # 0: min(CPU count, number of bags)

    def __post_init__(self) -> None:
        if self.shard_size <= 0:
            raise ValueError("shard_size must be > 0")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("val_fraction must be in [0, 1)")
        if self.split_by not in SPLIT_BY:
            raise ValueError(f"split_by must be one of {', '.join(SPLIT_BY)}, got {self.split_by!r}")
        if self.split_block_s <= 0:
            raise ValueError("split_block_s must be > 0")
        if self.workers < 0:
            raise ValueError("workers must be >= 0")


@dataclass(frozen=True)
class CheckConfig:
    """Thresholds of the bag checks `data check` reports and `data build` applies."""

    rate_tolerance: float = 0.25  # a measured rate off topics.yaml's by more than this fraction is reported
    heading_tolerance_deg: float = 5.0  # odometry heading vs direction of travel: above this the bag is refused
    heading_report_deg: float = 0.5  # ... above this a warning gives the offset to configure
    min_yaw_rate_correlation: float = 0.5  # IMU vs odometry yaw rate: below this the bag is refused
    min_speed_mps: float = 3.0  # heading and steering checks use samples at least this fast
    wheelbase_m: float = 2.7  # of the car that recorded the bags (road-wheel angle from yaw rate and speed)
    max_clock_skew_s: float = 0.5  # header-stamp clocks of two observed topics apart by more than this: refused

    def __post_init__(self) -> None:
        for name in ("rate_tolerance", "heading_tolerance_deg", "heading_report_deg", "min_speed_mps",
                     "wheelbase_m", "max_clock_skew_s"):  # fmt: skip
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")
        if not 0.0 < self.min_yaw_rate_correlation <= 1.0:
            raise ValueError("min_yaw_rate_correlation must be in (0, 1]")


@dataclass(frozen=True)
class DatasetConfig:
    observation: ObservationSpec = field(default_factory=ObservationSpec)
    build: BuildConfig = field(default_factory=BuildConfig)
    check: CheckConfig = field(default_factory=CheckConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_dict(self)

    def label_roles(self) -> list[str]:
        """Roles the labels are read from that the observation does not read already."""
        observed = set(self.observation.roles())
        return [r for r in self.build.labels.roles() if r not in observed]


def load_dataset_config(path: Path | None = None) -> DatasetConfig:
    """Read config/dataset.yaml (or `path`); unknown keys and bad values name the file and field."""
    path = path or config_dir() / "dataset.yaml"
    data = load_yaml(path)
    if not data:  # an empty file is a mistake, not a request for defaults (the vehicle reads this spec too)
        raise ConfigError(f"{path}: empty; expected 'observation:' and 'build:' sections (see config/dataset.yaml)")
    unknown = sorted(set(data) - {"observation", "build", "check"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(unknown)}; known: observation, build, check")
    build = data.get("build")
    if isinstance(build, dict):
        for old, new in _MOVED.items():
            if old in build:
                raise ConfigError(f"{path}: build.{old} is now {new} (the label sources have their own section)")
    if not isinstance(data.get("observation"), dict):
        raise ConfigError(f"{path}: no 'observation:' mapping")
    return dataclass_from_dict(DatasetConfig, data, str(path))
