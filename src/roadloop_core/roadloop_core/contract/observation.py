"""ObservationSpec: what a policy observes and how it is sampled (config/dataset.yaml `observation:`).

One typed object from end to end: the dataset builder samples with it, the dataset index and the
model bundle's manifest carry it, the trainer derives the model's image size, horizon and dt
from it, and the vehicle assembles observations with it and refuses a bundle whose spec differs
from its own. Only the JSON files hold it as a mapping (`to_dict` / `from_dict`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roadloop_core.config import dataclass_from_dict, dataclass_to_dict, load_yaml
from roadloop_core.errors import ConfigError

__all__ = ["ObservationSpec"]


@dataclass(frozen=True)
class ObservationSpec:
    """Sampling, synchronisation and feature parameters shared by the builder and the vehicle.

    Role fields name topic-registry roles (`config/topics.yaml`), never topic names.
    `camera: null` selects state-only mode (samples at `sample_rate_hz` on the odometry clock).
    """

    camera: str | None = "camera"
    imu: str | None = "imu"
    odometry: str = "odometry"
    route: str = "route"
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

    def __post_init__(self) -> None:
        if self.image_width <= 0 or self.image_height <= 0:
            raise ValueError("image_width and image_height must be > 0")
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

    def roles(self) -> list[str]:
        """Registry roles the synchronizer consumes, in a fixed order."""
        return [r for r in (self.camera, self.imu, self.odometry, self.route) if r is not None]

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
        (a written spec, in a dataset index or a manifest, must say what it was built with)."""
        if not isinstance(data, dict):
            raise ConfigError(f"{where}: expected a mapping, got {type(data).__name__}")
        if complete:
            missing = [f.name for f in dataclasses.fields(cls) if f.name not in data]
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
