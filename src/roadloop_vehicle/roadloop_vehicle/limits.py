"""The vehicle's hard envelope, one set of numbers that the controller and the safety supervisor both read.

In config/vehicle.yaml these sit under `/**: ros__parameters: vehicle_limits:` (the ROS 2
wildcard section every node reads), so drive_node and safety_node get the very same values
and a limit is written once. The safety supervisor enforces every one of them on every
command it lets out; the controller never commands beyond steering, speed and acceleration,
and brakes at most at its own `controller.max_braking_mps2`, which may not exceed
`max_decel_mps2` here.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from roadloop_core.param_schema import Param, check_fields

__all__ = ["VehicleLimits"]


@dataclass(frozen=True)
class VehicleLimits:
    max_steering_rad: Annotated[
        float, Param("largest road-wheel angle either way, left positive", unit="rad", range=(0.05, 1.2))
    ]
    max_steering_rate_radps: Annotated[
        float, Param("fastest change of the steering angle", unit="rad/s", range=(0.05, 5.0))
    ]
    max_speed_mps: Annotated[float, Param("highest speed ever commanded", unit="m/s", range=(0.5, 70.0))]
    max_accel_mps2: Annotated[float, Param("strongest acceleration", unit="m/s²", range=(0.1, 10.0))]
    max_decel_mps2: Annotated[float, Param("strongest braking (a magnitude)", unit="m/s²", range=(0.1, 12.0))]
    max_jerk_mps3: Annotated[float, Param("fastest change of the acceleration", unit="m/s³", range=(0.1, 100.0))]

    def __post_init__(self) -> None:
        check_fields(self)
