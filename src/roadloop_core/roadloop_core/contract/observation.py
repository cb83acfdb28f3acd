"""ObservationSpec: what a policy observes and how it is sampled (config/dataset.yaml `observation:`).

One typed object from end to end: the dataset builder samples with it, the dataset index and the
model bundle's manifest carry it, the trainer derives the model's image size, horizon and dt
from it, and the vehicle assembles observations with it and refuses a bundle whose spec differs
from its own. Only the JSON files hold it as a mapping (`to_dict` / `from_dict`).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roadloop_core.config import dataclass_from_dict, dataclass_to_dict, load_yaml
from roadloop_core.errors import ConfigError

__all__ = [
    "IMAGE_MODES",
    "IMU_ACCEL_UNITS",
    "IMU_AGGREGATES",
    "IMU_FRAMES",
    "ROUTE_SOURCES",
    "STANDARD_GRAVITY",
    "ObservationSpec",
]

# Where the route target (the model's route input) comes from:
#   topic      the route role's nav_msgs/Path (a planner's route), on the car as in the data
#   hindsight  the logged future path `route_lookahead_m` ahead (builder only: logs without a route); on
#              the car a hindsight-trained model is fed from the route role's topic (a planner's route)
#   none       no route input at all (the model drives from the ego state alone)
ROUTE_SOURCES = ("topic", "hindsight", "none")
# The IMU's axes: flu = REP-103 body frame (x forward, y left, z up); frd = x forward, y right, z down
# (y and z flipped: yaw rate and lateral acceleration change sign).
IMU_FRAMES = ("flu", "frd")
IMU_ACCEL_UNITS = ("mps2", "g")  # linear_acceleration in m/s² (sensor_msgs/Imu's unit) or in g
# How the IMU samples of one frame interval become the frame's yaw rate and accelerations.
IMU_AGGREGATES = ("latest", "mean", "median")
# What the image input is: rgb -- the camera image box-filtered to the model size; semantic -- a top-down
# camera raster turned into road / vehicles / route channels over a metric grid (roadloop_core.features.semantic)
IMAGE_MODES = ("rgb", "semantic")
STANDARD_GRAVITY = 9.80665  # m/s² per g

# Fields added after the first dataset indices and manifests were written: a written spec without
# them was built with these defaults (which are the behaviour from before the field existed).
_LATER_FIELDS = frozenset(
    {"route_source", "imu_frame", "imu_accel_unit", "imu_aggregate", "odometry_yaw_offset_deg",
     "ego_history_steps", "ego_history_dt_s", "image_mode", "bev_px_per_m", "bev_ego_col", "bev_ego_row",
     "bev_ahead_m", "bev_behind_m", "bev_half_width_m"}
)  # fmt: skip
_MAX_HISTORY_S = 5.0  # the synchronizer keeps this much odometry behind the newest stamp


@dataclass(frozen=True)
class ObservationSpec:
    """Sampling, synchronisation and feature parameters shared by the builder and the vehicle.

    Role fields name topic-registry roles (`config/topics.yaml`), never topic names.
    `camera: null` selects state-only mode (samples at `sample_rate_hz` on the odometry clock);
    `route_source` says where the route target comes from (ROUTE_SOURCES).
    """

    camera: str | None = "camera"
    imu: str | None = "imu"
    odometry: str = "odometry"
    route: str | None = "route"
    route_source: str = "topic"
    image_width: int = 64
    image_height: int = 64
    sample_rate_hz: float = 10.0
    # An input older (or, for interpolation brackets, farther) than this from the frame stamp is stale.
    sync_slop_s: float = 0.1
    # None: the latest route is used however old it is (routes are latched and rarely republished).
    route_max_age_s: float | None = None
    route_lookahead_m: float = 10.0
    label_horizon: int = 8
    label_dt_s: float = 0.5
    # IMU conventions (REP-103/REP-145) and the per-frame aggregation of a high-rate IMU
    imu_frame: str = "flu"
    imu_accel_unit: str = "mps2"
    imu_aggregate: str = "latest"
    # added to the odometry orientation's yaw (a heading bias `roadloop data check` measured), degrees
    odometry_yaw_offset_deg: float = 0.0
    # ego history input: speed, yaw rate, acceleration and heading change at t - j * dt, j = 1..steps
    ego_history_steps: int = 0
    ego_history_dt_s: float = 0.2
    # image input (IMAGE_MODES); semantic: the camera is a top-down raster of `bev_px_per_m` pixels per
    # metre with the ego at pixel (bev_ego_col, bev_ego_row) facing right (the camera's calibration), and
    # the model grid (image_width x image_height) covers bev_behind_m..bev_ahead_m by +-bev_half_width_m
    image_mode: str = "rgb"
    bev_px_per_m: float = 2.0
    bev_ego_col: float = 48.0
    bev_ego_row: float = 40.0
    bev_ahead_m: float = 56.0
    bev_behind_m: float = 24.0
    bev_half_width_m: float = 20.0

    def __post_init__(self) -> None:
        for name, choices in (
            ("route_source", ROUTE_SOURCES),
            ("imu_frame", IMU_FRAMES),
            ("imu_accel_unit", IMU_ACCEL_UNITS),
            ("imu_aggregate", IMU_AGGREGATES),
            ("image_mode", IMAGE_MODES),
        ):
            if getattr(self, name) not in choices:
                raise ValueError(f"{name} must be one of {', '.join(choices)}, got {getattr(self, name)!r}")
        if self.route_source == "topic" and self.route is None:
            raise ValueError(
                "route is null but route_source is topic: name the route role, or set route_source: none "
                "(a model without a route input) or hindsight (route target from the logged future path)"
            )
        if self.route_source == "none" and self.route is not None:
            raise ValueError(f"route_source is none but route names the role {self.route!r}: set route: null")
        if self.ego_history_steps < 0 or self.ego_history_dt_s <= 0:
            raise ValueError("ego_history_steps must be >= 0 and ego_history_dt_s > 0")
        if (self.ego_history_steps + 1) * self.ego_history_dt_s > _MAX_HISTORY_S:
            raise ValueError(
                f"ego history spans {(self.ego_history_steps + 1) * self.ego_history_dt_s:g} s; at most "
                f"{_MAX_HISTORY_S:g} s (ego_history_steps x ego_history_dt_s)"
            )
        if not -180.0 <= self.odometry_yaw_offset_deg <= 180.0:
            raise ValueError("odometry_yaw_offset_deg must be within [-180, 180]")
        if self.image_width <= 0 or self.image_height <= 0:
            raise ValueError("image_width and image_height must be > 0")
        bev = (self.bev_px_per_m, self.bev_ahead_m, self.bev_half_width_m)
        if not all(math.isfinite(v) and v > 0 for v in bev) or not 0 <= self.bev_behind_m < math.inf:
            raise ValueError("bev_px_per_m, bev_ahead_m and bev_half_width_m must be > 0, bev_behind_m >= 0")
        if self.sample_rate_hz <= 0:
            raise ValueError("sample_rate_hz must be > 0")
        if self.sync_slop_s <= 0:
            raise ValueError("sync_slop_s must be > 0")
        if self.route_lookahead_m < 0:
            raise ValueError("route_lookahead_m must be >= 0")
        if self.label_horizon <= 0 or self.label_dt_s <= 0:
            raise ValueError("label_horizon and label_dt_s must be > 0")
        if self.route_max_age_s is not None and self.route_max_age_s <= 0:
            raise ValueError("route_max_age_s must be > 0 or null")

    @property
    def state_only(self) -> bool:
        return self.camera is None

    @property
    def period_ns(self) -> int:
        return round(1e9 / self.sample_rate_hz)

    @property
    def slop_ns(self) -> int:
        return round(self.sync_slop_s * 1e9)

    @property
    def history_ns(self) -> int:
        """How far back the ego history reaches (0 without one)."""
        return round(self.ego_history_steps * self.ego_history_dt_s * 1e9) if self.ego_history_steps else 0

    def route_role(self, *, onboard: bool = False) -> str | None:
        """The role route targets are read from: the route topic in `topic` mode; on the car (`onboard`)
        also for a `hindsight` model, whose training-time future path a planner's route replaces."""
        if self.route_source == "topic" or (onboard and self.route_source == "hindsight"):
            return self.route
        return None

    def roles(self, *, onboard: bool = False) -> list[str]:
        """Registry roles the synchronizer consumes (in the builder, or `onboard`), in a fixed order."""
        return [r for r in (self.camera, self.imu, self.odometry, self.route_role(onboard=onboard)) if r is not None]

    def differences(self, other: ObservationSpec) -> list[tuple[str, Any, Any]]:
        """(field, this value, other's value) for every field in which `other` differs, in field order."""
        return [
            (f.name, getattr(self, f.name), getattr(other, f.name))
            for f in dataclasses.fields(self)
            if getattr(self, f.name) != getattr(other, f.name)
        ]

    def to_dict(self) -> dict[str, Any]:
        """The JSON/YAML form, every field in declaration order (what index.json and manifest.json hold)."""
        return dataclass_to_dict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any], where: str = "observation", *, complete: bool = False) -> ObservationSpec:
        """Parse the mapping form; `complete` refuses a mapping that leaves any field to its default
        (a written spec, in a dataset index or a manifest, must say what it was built with), but for the
        fields added since the first written specs, whose defaults are the behaviour from before them."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
        if complete:
            missing = [f.name for f in dataclasses.fields(cls) if f.name not in data and f.name not in _LATER_FIELDS]
            if missing:
                raise ConfigError(f"{where}: missing field(s) {', '.join(missing)}")
        return dataclass_from_dict(cls, data, where)

    @classmethod
    def from_config(cls, path: Path) -> ObservationSpec:
        """Read the `observation:` section of a dataset config (the entry point says which: config/dataset.yaml)."""
        section = load_yaml(path).get("observation")
        if not isinstance(section, dict):
            raise ConfigError(f"{path}: no 'observation:' mapping")
        return cls.from_dict(section, f"{path}: observation")
