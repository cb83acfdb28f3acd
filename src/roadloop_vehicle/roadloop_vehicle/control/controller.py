"""Pure pursuit steering with a speed-dependent look-ahead, and a PID on speed.

Waypoints are in the ego frame (x forward, y left, metres), as the policy emits
them. The look-ahead point is found by walking the polyline from the vehicle
origin, so a short or bent trajectory still yields a point at the right distance.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Annotated

import numpy as np
import numpy.typing as npt

from roadloop_core.param_schema import Param, check_fields
from roadloop_vehicle.limits import VehicleLimits

__all__ = ["Command", "Controller", "ControllerConfig", "ControllerInput"]


@dataclass(frozen=True)
class ControllerConfig:
    wheelbase_m: Annotated[float, Param("axle-to-axle distance of the bicycle model", unit="m", range=(0.5, 10.0))]
    lookahead_min_m: Annotated[float, Param("shortest look-ahead distance", unit="m", range=(0.5, 50.0))]
    lookahead_max_m: Annotated[float, Param("longest look-ahead distance", unit="m", range=(0.5, 200.0))]
    lookahead_gain_s: Annotated[
        float, Param("look-ahead grows by this many metres per m/s of speed", unit="s", range=(0.0, 5.0))
    ]
    max_braking_mps2: Annotated[
        float,
        Param(
            "the speed PID's strongest braking, at most vehicle_limits.max_decel_mps2", unit="m/s²", range=(0.1, 12.0)
        ),
    ]
    kp: Annotated[float, Param("speed PID proportional gain", unit="(m/s²)/(m/s)", range=(0.0, 20.0))]
    ki: Annotated[float, Param("speed PID integral gain", unit="(m/s²)/m", range=(0.0, 20.0))]
    kd: Annotated[float, Param("speed PID derivative gain", unit="s·(m/s²)/(m/s)", range=(0.0, 20.0))]
    integral_limit: Annotated[
        float, Param("clamp of the speed-error integral (anti wind-up)", unit="m", range=(0.0, 100.0))
    ]

    def __post_init__(self) -> None:
        check_fields(self)
        if self.lookahead_min_m > self.lookahead_max_m:
            raise ValueError("need lookahead_min_m <= lookahead_max_m")


@dataclass(frozen=True)
class ControllerInput:
    waypoints: npt.NDArray[np.float32]  # (K, 2) ego frame
    target_speed: float  # m/s, from the policy
    speed: float  # measured m/s
    dt: float  # seconds since the previous step


@dataclass(frozen=True)
class Command:
    steering_angle: float  # rad, left positive
    speed: float  # m/s
    acceleration: float  # m/s²
    jerk: float = 0.0
    steering_angle_velocity: float = 0.0

    def is_finite(self) -> bool:
        return all(
            math.isfinite(v)
            for v in (self.steering_angle, self.speed, self.acceleration, self.jerk, self.steering_angle_velocity)
        )


def lookahead_point(waypoints: npt.NDArray[np.float32], distance: float) -> tuple[float, float]:
    """The point at arc length `distance` along origin -> waypoints (extrapolated past the last one)."""
    pts = np.vstack([np.zeros((1, 2)), np.asarray(waypoints, dtype=np.float64)])
    seg = np.diff(pts, axis=0)
    lengths = np.hypot(seg[:, 0], seg[:, 1])
    travelled = 0.0
    for (x0, y0), (dx, dy), length in zip(pts[:-1], seg, lengths, strict=True):
        if length > 1e-9 and travelled + length >= distance:
            f = (distance - travelled) / length
            return float(x0 + f * dx), float(y0 + f * dy)
        travelled += float(length)
    nonzero = np.flatnonzero(lengths > 1e-9)
    if nonzero.size == 0:
        return distance, 0.0  # no usable trajectory: straight ahead
    i = int(nonzero[-1])
    ux, uy = seg[i] / lengths[i]
    rest = distance - travelled
    return float(pts[-1, 0] + ux * rest), float(pts[-1, 1] + uy * rest)


class Controller:
    """`step(ControllerInput) -> Command`; keeps only the PID state between frames."""

    def __init__(self, config: ControllerConfig, limits: VehicleLimits) -> None:
        self.config = config
        self.limits = limits
        self._integral = 0.0
        self._prev_error: float | None = None

    def reset(self) -> None:
        self._integral = 0.0
        self._prev_error = None

    def lookahead(self, speed: float) -> float:
        c = self.config
        return min(c.lookahead_max_m, max(c.lookahead_min_m, c.lookahead_min_m + c.lookahead_gain_s * abs(speed)))

    def step(self, inp: ControllerInput) -> Command:
        c, lim = self.config, self.limits
        if not (np.all(np.isfinite(inp.waypoints)) and math.isfinite(inp.target_speed)):
            # Propagate: the safety supervisor, not the controller, decides what a bad output means.
            nan = float("nan")
            return Command(nan, nan, nan)
        ld = self.lookahead(inp.speed)
        x, y = lookahead_point(inp.waypoints, ld)
        alpha = math.atan2(y, x)
        steering = math.atan2(2.0 * c.wheelbase_m * math.sin(alpha), ld)
        steering = max(-lim.max_steering_rad, min(lim.max_steering_rad, steering))

        target = max(0.0, min(lim.max_speed_mps, inp.target_speed))
        error = target - inp.speed
        dt = max(inp.dt, 1e-3)
        self._integral = max(-c.integral_limit, min(c.integral_limit, self._integral + error * dt))
        derivative = 0.0 if self._prev_error is None else (error - self._prev_error) / dt
        self._prev_error = error
        accel = c.kp * error + c.ki * self._integral + c.kd * derivative
        accel = max(-c.max_braking_mps2, min(lim.max_accel_mps2, accel))
        return Command(steering_angle=steering, speed=target, acceleration=accel)
