"""The onboard parameters: `config/vehicle.yaml`, `drive_node:` and `safety_node:` ros__parameters.

Replay, the simulator's bundle driver and the ROS 2 nodes all load these two
dataclasses, so a parameter cannot differ between a bag replay and the car.
Relative paths are relative to the config folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from roadloop_core.config import config_dir, load_params
from roadloop_vehicle.control.controller import ControllerConfig
from roadloop_vehicle.model_manager.manager import ModelManagerConfig
from roadloop_vehicle.runtime.base import RuntimeConfig
from roadloop_vehicle.safety.supervisor import SafetyConfig

__all__ = ["DriveParams", "SafetyParams", "VehicleParams", "load_vehicle_params", "resolve_path"]


@dataclass(frozen=True)
class DriveParams:
    """drive_node: observation -> policy -> controller."""

    bundle: str = ""  # a bundle folder; "" follows `model_manager.models_dir`/current
    public_key: str = "keys/signing.pub"  # Ed25519 key bundles must be signed with
    observation_config: str = "dataset.yaml"  # the vehicle's ObservationSpec (`observation:` section)
    topics_config: str = "topics.yaml"
    runtime: RuntimeConfig = field(default_factory=RuntimeConfig)
    controller: ControllerConfig = field(default_factory=ControllerConfig)
    model_manager: ModelManagerConfig = field(default_factory=ModelManagerConfig)


@dataclass(frozen=True)
class SafetyParams:
    """safety_node: gates command_raw -> command."""

    topics_config: str = "topics.yaml"
    diagnostics_period_s: float = 1.0
    safety: SafetyConfig = field(default_factory=SafetyConfig)

    def __post_init__(self) -> None:
        if self.diagnostics_period_s <= 0:
            raise ValueError("diagnostics_period_s must be > 0")


@dataclass(frozen=True)
class VehicleParams:
    drive: DriveParams = field(default_factory=DriveParams)
    safety: SafetyParams = field(default_factory=SafetyParams)
    source: Path | None = None  # the file they came from (relative paths resolve next to it)

    def path(self, value: str) -> Path:
        return resolve_path(value, self.source.parent if self.source else config_dir())


def resolve_path(value: str, base: Path) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else base / p


def load_vehicle_params(path: Path | None = None) -> VehicleParams:
    """Both nodes' parameters from `config/vehicle.yaml` (or `path`)."""
    path = path or config_dir() / "vehicle.yaml"
    return VehicleParams(
        drive=load_params(path, "drive_node", DriveParams),
        safety=load_params(path, "safety_node", SafetyParams),
        source=path,
    )
