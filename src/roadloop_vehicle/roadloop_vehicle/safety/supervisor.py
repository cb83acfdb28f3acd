"""The safety supervisor: explicit states, checked faults, limits, controlled stop.

Shaped like openpilot's selfdrived/state.py: the state transition is one pure
function of (state, faults, healthy-frame count) so it can be tested as a table.

    INIT        nothing trustworthy seen yet          -> ACTIVE when a frame is healthy
    ACTIVE      policy commands pass (clamped, rate-limited)
    FALLBACK    controlled stop; entered on any fault  -> RECOVERING on a healthy frame
    RECOVERING  still stopping; needs M healthy frames in a row -> ACTIVE (a fault -> FALLBACK)

Every command leaving the supervisor, fallback included, obeys the vehicle's limits
(`VehicleLimits`): steering angle and rate, speed, acceleration and braking, jerk.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from enum import Enum
from typing import Annotated

import numpy as np
import numpy.typing as npt

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.param_schema import Param, check_fields
from roadloop_core.registry import TopicRegistry
from roadloop_vehicle.control.controller import Command
from roadloop_vehicle.limits import VehicleLimits

__all__ = [
    "Fault",
    "SafetyConfig",
    "SafetyInput",
    "SafetyOutput",
    "SafetySupervisor",
    "State",
    "observed_roles",
    "transition",
]


class State(str, Enum):
    INIT = "init"
    ACTIVE = "active"
    FALLBACK = "fallback"
    RECOVERING = "recovering"


class Fault(str, Enum):
    NO_COMMAND = "no_command"
    NAN_OUTPUT = "nan_output"
    IMPLAUSIBLE_JUMP = "implausible_jump"
    IMPLAUSIBLE_VALUE = "implausible_value"
    MODEL_UNAVAILABLE = "model_unavailable"


@dataclass(frozen=True)
class SafetyConfig:
    """How the supervisor judges and stops; the limits it enforces are the vehicle's (`VehicleLimits`)."""

    extra_monitored_roles: Annotated[
        list[str],
        Param(
            "registry roles that fault as stale:<role> when silent for stale_factor / rate_hz, on top of the roles "
            "the model's observation spec reads (its inputs, always monitored): e.g. command_raw"
        ),
    ]
    recovery_frames: Annotated[
        int, Param("healthy frames in a row before leaving the fallback", unit="frames", range=(1, 10000))
    ]
    stop_decel_mps2: Annotated[
        float,
        Param("controlled stop: braking, at most vehicle_limits.max_decel_mps2", unit="m/s²", range=(0.1, 12.0)),
    ]
    max_waypoint_jump_m: Annotated[
        float, Param("frame-to-frame move of any waypoint above this is implausible", unit="m", range=(0.1, 1000.0))
    ]
    max_target_speed_jump_mps: Annotated[
        float, Param("frame-to-frame change of target speed above this is implausible", unit="m/s", range=(0.1, 100.0))
    ]
    nominal_dt_s: Annotated[
        float, Param("time step assumed for the first frame's rate limits", unit="s", range=(0.001, 10.0))
    ]

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class SafetyInput:
    now_ns: int
    last_seen_ns: Mapping[str, int | None]  # role -> when its latest message arrived (None: never)
    command: Command | None  # the policy/controller command for this frame (None: nothing new)
    waypoints: npt.NDArray[np.float32] | None = None
    target_speed: float | None = None
    model_available: bool = True


@dataclass(frozen=True)
class SafetyOutput:
    command: Command
    state: State
    faults: tuple[str, ...]  # e.g. ("stale:camera", "nan_output")
    reason: str  # why we are not ACTIVE ("" when ACTIVE)
    changed: bool  # state differs from the previous frame


def observed_roles(spec: ObservationSpec) -> list[str]:
    """The model's inputs the supervisor watches for staleness: what the observation spec reads on the car
    (camera, IMU, odometry), but the route: a latched route is republished at will, and how old it may be is
    the synchronizer's rule (`route_max_age_s`: its frames are dropped, so the watchdog stops the car)."""
    route = spec.route_role(onboard=True)
    return [r for r in spec.roles(onboard=True) if r != route]


def transition(state: State, healthy: bool, healthy_count: int, recovery_frames: int) -> tuple[State, int]:
    """(state, frame healthy?, healthy frames so far) -> (next state, healthy frames so far)."""
    if not healthy:
        return (State.INIT if state is State.INIT else State.FALLBACK), 0
    count = healthy_count + 1
    if state is State.INIT or state is State.ACTIVE:
        return State.ACTIVE, count
    if count >= recovery_frames:
        return State.ACTIVE, count
    return State.RECOVERING, count


class SafetySupervisor:
    """`step(SafetyInput) -> SafetyOutput`.

    Monitored for staleness: `observed_roles` -- what the model reads, from its observation spec (the
    loaded bundle's, which the model manager makes sure is the vehicle's) -- plus the config's
    `extra_monitored_roles`; never a topic the model does not read unless the config asks for it.
    """

    def __init__(
        self, config: SafetyConfig, limits: VehicleLimits, registry: TopicRegistry, *, observed_roles: Sequence[str]
    ) -> None:
        self.config = config
        self.limits = limits
        self.monitored_roles = tuple(dict.fromkeys([*observed_roles, *config.extra_monitored_roles]))
        self.stale_after_ns = {
            role: int(registry[role].stale_after_s(registry.stale_factor) * 1e9) for role in self.monitored_roles
        }
        self.state = State.INIT
        self._healthy = 0
        self._last_now: int | None = None
        self._out = Command(0.0, 0.0, 0.0)
        self._prev_waypoints: npt.NDArray[np.float32] | None = None
        self._prev_target: float | None = None
        self._reason = "waiting for the first healthy frame"

    def faults(self, inp: SafetyInput) -> list[str]:
        c = self.config
        found: list[str] = []
        for role, limit in self.stale_after_ns.items():
            seen = inp.last_seen_ns.get(role)
            if seen is None or inp.now_ns - seen > limit:
                found.append(f"stale:{role}")
        if not inp.model_available:
            found.append(Fault.MODEL_UNAVAILABLE.value)
        if inp.command is None:
            found.append(Fault.NO_COMMAND.value)
        elif not inp.command.is_finite():
            found.append(Fault.NAN_OUTPUT.value)
        if inp.waypoints is not None:
            if not np.all(np.isfinite(inp.waypoints)):
                if Fault.NAN_OUTPUT.value not in found:
                    found.append(Fault.NAN_OUTPUT.value)
            elif self._jump(inp.waypoints) > c.max_waypoint_jump_m:
                found.append(Fault.IMPLAUSIBLE_JUMP.value)
        if inp.target_speed is not None and math.isfinite(inp.target_speed):
            if inp.target_speed < -0.5 or inp.target_speed > 1.5 * self.limits.max_speed_mps:
                found.append(Fault.IMPLAUSIBLE_VALUE.value)
            elif (
                self._prev_target is not None
                and abs(inp.target_speed - self._prev_target) > c.max_target_speed_jump_mps
            ):
                found.append(Fault.IMPLAUSIBLE_JUMP.value)
        return found

    def _jump(self, waypoints: npt.NDArray[np.float32]) -> float:
        prev = self._prev_waypoints
        if prev is None or prev.shape != waypoints.shape:
            return 0.0
        return float(np.max(np.abs(waypoints - prev)))

    def step(self, inp: SafetyInput) -> SafetyOutput:
        c = self.config
        dt = c.nominal_dt_s if self._last_now is None else max(1e-3, (inp.now_ns - self._last_now) / 1e9)
        self._last_now = inp.now_ns
        faults = self.faults(inp)
        prev_state = self.state
        self.state, self._healthy = transition(self.state, not faults, self._healthy, c.recovery_frames)
        # Judge jumps against the last *finite* output, so one bad frame does not poison the next.
        if inp.waypoints is not None and np.all(np.isfinite(inp.waypoints)):
            self._prev_waypoints = np.array(inp.waypoints, dtype=np.float32, copy=True)
        if inp.target_speed is not None and math.isfinite(inp.target_speed):
            self._prev_target = inp.target_speed

        if self.state is State.ACTIVE and inp.command is not None:
            wanted = inp.command
            self._reason = ""
        else:
            wanted = self._controlled_stop(dt)
            if faults:
                self._reason = "controlled stop: " + ", ".join(faults)
            elif self.state is State.RECOVERING:
                self._reason = f"recovering: {self._healthy}/{c.recovery_frames} healthy frames"
        self._out = self._limit(wanted, dt)
        return SafetyOutput(
            command=self._out,
            state=self.state,
            faults=tuple(faults),
            reason=self._reason,
            changed=self.state is not prev_state,
        )

    def _controlled_stop(self, dt: float) -> Command:
        c = self.config
        speed = max(0.0, self._out.speed - c.stop_decel_mps2 * dt)
        accel = -c.stop_decel_mps2 if speed > 0.0 else 0.0
        return Command(steering_angle=self._out.steering_angle, speed=speed, acceleration=accel)

    def _limit(self, cmd: Command, dt: float) -> Command:
        lim = self.limits
        prev = self._out
        max_dsteer = lim.max_steering_rate_radps * dt
        steer = max(-lim.max_steering_rad, min(lim.max_steering_rad, cmd.steering_angle))
        steer = max(prev.steering_angle - max_dsteer, min(prev.steering_angle + max_dsteer, steer))
        max_daccel = lim.max_jerk_mps3 * dt
        accel = max(-lim.max_decel_mps2, min(lim.max_accel_mps2, cmd.acceleration))
        accel = max(prev.acceleration - max_daccel, min(prev.acceleration + max_daccel, accel))
        speed = max(0.0, min(lim.max_speed_mps, cmd.speed))
        return Command(
            steering_angle=steer,
            speed=speed,
            acceleration=accel,
            jerk=(accel - prev.acceleration) / dt,
            steering_angle_velocity=(steer - prev.steering_angle) / dt,
        )
