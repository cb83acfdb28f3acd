"""The onboard parameters: `config/vehicle.yaml`, the `drive_node:`, `safety_node:` and shared `/**:` sections.

Replay, the simulator's bundle driver and the ROS 2 nodes all build these two dataclasses from
that one file through one schema (`roadloop_core.param_schema`: type, unit, range, meaning on
each field), so a parameter cannot differ between a bag replay and the car. No field has a
default: every value the car runs on is written in the params file, once (a missing one is an
error, never a silent default). What both nodes read (`topics_config`, `observation_config`,
`vehicle_limits`) is in the file's `/**:` section. Relative paths are relative to the params file's folder.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from roadloop_core.param_schema import Param, check_fields, load_node_params
from roadloop_vehicle.control.controller import ControllerConfig
from roadloop_vehicle.limits import VehicleLimits
from roadloop_vehicle.model_manager.manager import ModelManagerConfig
from roadloop_vehicle.runtime.base import RuntimeConfig
from roadloop_vehicle.safety.supervisor import SafetyConfig

__all__ = ["DriveParams", "SafetyParams", "VehicleParams", "load_vehicle_params", "resolve_path"]

TopicsConfig = Annotated[str, Param("the topic registry (config/topics.yaml) both nodes use")]
ObservationConfig = Annotated[
    str,
    Param(
        "file whose `observation:` section is the vehicle's ObservationSpec; bundles must match it, and the safety "
        "node monitors the roles it reads"
    ),
]


@dataclass(frozen=True)
class DriveParams:
    """drive_node: observation -> policy -> controller."""

    bundle: Annotated[str, Param('a bundle folder to load once; "" follows model_manager.models_dir/current')]
    public_key: Annotated[str, Param("Ed25519 public key every bundle must be signed with")]
    observation_config: ObservationConfig
    topics_config: TopicsConfig
    vehicle_limits: VehicleLimits
    runtime: RuntimeConfig
    controller: ControllerConfig
    model_manager: ModelManagerConfig

    def __post_init__(self) -> None:
        check_fields(self)
        if self.controller.max_braking_mps2 > self.vehicle_limits.max_decel_mps2:
            raise ValueError(
                f"controller.max_braking_mps2 {self.controller.max_braking_mps2:g} exceeds "
                f"vehicle_limits.max_decel_mps2 {self.vehicle_limits.max_decel_mps2:g}"
            )


@dataclass(frozen=True)
class SafetyParams:
    """safety_node: gates command_raw -> command."""

    topics_config: TopicsConfig
    observation_config: ObservationConfig
    diagnostics_period_s: Annotated[
        float, Param("/diagnostics at least this often (and at every state change)", unit="s", range=(0.01, 3600.0))
    ]
    vehicle_limits: VehicleLimits
    safety: SafetyConfig

    def __post_init__(self) -> None:
        check_fields(self)
        if self.safety.stop_decel_mps2 > self.vehicle_limits.max_decel_mps2:
            raise ValueError(
                f"safety.stop_decel_mps2 {self.safety.stop_decel_mps2:g} exceeds "
                f"vehicle_limits.max_decel_mps2 {self.vehicle_limits.max_decel_mps2:g}"
            )


@dataclass(frozen=True)
class VehicleParams:
    drive: DriveParams
    safety: SafetyParams
    source: Path  # the params file (relative paths in it resolve next to it)

    def path(self, value: str) -> Path:
        return resolve_path(value, self.source.parent)


def resolve_path(value: str, base: Path) -> Path:
    p = Path(os.path.expanduser(value))
    return p if p.is_absolute() else base / p


def load_vehicle_params(path: Path) -> VehicleParams:
    """Both nodes' parameters from a vehicle params file (the entry point says which: config/vehicle.yaml)."""
    return VehicleParams(
        drive=load_node_params(path, "drive_node", DriveParams),
        safety=load_node_params(path, "safety_node", SafetyParams),
        source=path,
    )
