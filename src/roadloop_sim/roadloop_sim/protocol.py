"""The Simulator and Driver protocols and the plain records they exchange.

Simulator (one per backend: highway-env, CARLA)::

    sim.reset(scenario, seed) -> StepResult      # first sensor messages, at sim time 0
    sim.step(command)         -> StepResult      # one policy period (sim_rate / policy_rate physics steps)

`StepResult.messages` is a list of `(topic, timestamp_ns, msg)` with every registry sensor topic
the period produced (rosbags message objects, header stamps = simulation time, topics and types
from `roadloop_core.registry`), `StepResult.truth` is what the evaluator scores (collision,
off-road, route progress) and `StepResult.privileged` is the simulator state only the expert reads.

Driver (expert, baselines, and the onboard pipeline as `bundle:PATH`)::

    driver.reset(scenario, seed)                 # before each episode
    driver.act(obs) -> AckermannDriveStamped     # once per policy period

`obs` is an `Observation`:
  - `obs.time_ns`: simulation time of the decision (the command is stamped with it);
  - `obs.messages`: the newest decoded message per topic name seen so far in the episode
    (latched topics such as the route stay there);
  - `obs.period`: every `(topic, timestamp_ns, msg)` published since the previous decision, in time order;
  - `obs.raw`: the same period as `roadloop_core.bag.RawMessage(topic, typename, timestamp_ns, cdr_bytes)`,
    exactly what a bag would hold; filled only for drivers that set `wants_raw = True` (the onboard
    pipeline consumes these, as on the car), otherwise an empty list;
  - `obs.privileged`: `PrivilegedState` (ego state, lane centrelines, other vehicles; ROS map frame).
    Only the expert may read it: a policy must drive from the messages.
Optional driver attributes: `name: str` (recorded as `roadloop.driver`), `wants_raw: bool`,
`last_trajectory` (a nav_msgs/Path or None, published on the registry's `trajectory` topic when set).

Frames: ROS REP-103/105. The map frame is ENU (x east, y north); the ego frame is x forward, y left;
steering angles are positive to the left. highway-env's own frame (y pointing down) is converted
inside the backend and never leaks out.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from roadloop_core.bag import RawMessage

__all__ = [
    "AgentState",
    "Driver",
    "EgoSample",
    "Observation",
    "PrivilegedState",
    "Simulator",
    "StepResult",
    "Truth",
    "end_reason",
]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class AgentState:
    """A vehicle in the map frame: centre position (m), yaw (rad, CCW from east), speed (m/s), size (m)."""

    x: float
    y: float
    yaw: float
    speed: float
    length: float = 5.0
    width: float = 2.0


@dataclass(frozen=True)
class EgoSample:
    """The ego's motion at one physics step (what comfort and the plots are computed from)."""

    t: float  # s since episode start
    x: float
    y: float
    yaw: float
    speed: float
    accel_lon: float
    accel_lat: float
    yaw_rate: float
    off_road: bool


@dataclass(frozen=True)
class PrivilegedState:
    """Simulator ground truth for the expert: ego, lane centrelines (polylines, map frame), others."""

    ego: AgentState
    lanes: tuple[FloatArray, ...]  # lane centrelines side by side, each (N, 2), along the route
    route_lane: int  # index in `lanes` of the route's reference lane
    wheelbase: float
    vehicles: tuple[AgentState, ...]
    speed_limit: float
    max_steering_angle: float
    speed_gain: float = 2.0  # the backend's speed loop: a = speed_gain * (v_cmd - v)


@dataclass(frozen=True)
class Truth:
    """Per-period ground truth for scoring."""

    collision: str | None  # None, "vehicle" or "static" (a collision that happened in this period)
    off_road: bool  # ego off every lane at the end of the period
    progress_m: float  # arc length along the route reached so far (monotonic)
    route_length_m: float
    done: bool
    reason: str  # "", "route_complete", "collision", "off_road", "timeout"
    samples: tuple[EgoSample, ...] = ()


def end_reason(
    *,
    progress_m: float,
    route_length_m: float,
    collision: str | None,
    offroad_s: float,
    offroad_terminal_s: float,
    time_s: float,
    max_duration_s: float,
) -> str:
    """Why an episode ends after this period ("" while it goes on), the same rule for every backend.

    Order matters: finishing the route wins over a collision in the same period, which wins over
    having been off-road too long, which wins over the time limit.
    """
    if progress_m >= route_length_m:
        return "route_complete"
    if collision is not None:
        return "collision"
    if offroad_s >= offroad_terminal_s:
        return "off_road"
    if time_s >= max_duration_s - 1e-9:
        return "timeout"
    return ""


@dataclass
class StepResult:
    time_ns: int
    messages: list[tuple[str, int, Any]]
    truth: Truth
    privileged: PrivilegedState


@dataclass
class Observation:
    time_ns: int
    messages: dict[str, Any]
    period: list[tuple[str, int, Any]]
    privileged: PrivilegedState
    raw: list[RawMessage] = field(default_factory=list)


@runtime_checkable
class Simulator(Protocol):
    def reset(self, scenario: str, seed: int) -> StepResult: ...

    def step(self, command: Any) -> StepResult: ...

    def close(self) -> None: ...


@runtime_checkable
class Driver(Protocol):
    def reset(self, scenario: str, seed: int) -> None: ...

    def act(self, obs: Observation) -> Any: ...
