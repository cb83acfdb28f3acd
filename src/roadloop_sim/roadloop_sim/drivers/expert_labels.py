"""The privileged expert as a labeller of states it does not drive (DAgger).

While another driver (the policy) drives, `ExpertLabeler.label(obs)` answers, for the state the policy
led into: what the expert would command now, and where the expert would be at t + k dt (k = 1..K)
if it took over now -- a rollout of the expert's own decisions (a twin of it, `ExpertDriver.clone`)
through the simulator's vehicle model (highway-env's kinematic bicycle and speed loop, the same
equations the backend steps), the other vehicles moving on at constant velocity. The trajectory is
a nav_msgs/Path in the ego frame (the poses are the waypoint labels, as `build.labels` reads a
Path role), the command an AckermannDriveStamped. It also says whether the state is a near miss
(a vehicle ahead in the ego's lane closer than `near_gap_s` of headway or `near_ttc_s` to collision).
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from roadloop_sim.drivers.expert import ExpertDriver
from roadloop_sim.protocol import AgentState, Observation, PrivilegedState
from roadloop_sim.scenarios import SimulationConfig
from roadloop_sim.sensor_messages import MessageFactory

__all__ = ["ExpertLabel", "ExpertLabeler", "near_miss"]


@dataclass(frozen=True)
class ExpertLabel:
    command: Any  # ackermann_msgs/AckermannDriveStamped: the expert's command in this state
    trajectory: Any  # nav_msgs/Path, ego frame: the expert's rollout at t + k dt
    near_miss: bool


def near_miss(st: PrivilegedState, gap_s: float = 0.8, ttc_s: float = 2.5, lane_halfwidth: float = 2.0) -> bool:
    """A vehicle ahead in the ego's lane within `gap_s` of time headway, or `ttc_s` to collision."""
    e = st.ego
    c, s = math.cos(e.yaw), math.sin(e.yaw)
    for a in st.vehicles:
        dx, dy = a.x - e.x, a.y - e.y
        ahead, side = c * dx + s * dy, -s * dx + c * dy
        if ahead <= 0 or abs(side) > lane_halfwidth + a.width / 2.0 - 0.3:
            continue
        gap = ahead - (a.length + e.length) / 2.0
        closing = e.speed - a.speed * math.cos(a.yaw - e.yaw)
        if gap < gap_s * e.speed or (closing > 0 and gap / closing < ttc_s):
            return True
    return False


class ExpertLabeler:
    """Labels the states another driver visits with the expert's command and rolled-out trajectory."""

    def __init__(
        self, cfg: SimulationConfig, horizon: int, dt_s: float, distro: str = "jazzy", rollout_period_s: float = 0.2
    ) -> None:
        self.cfg = cfg
        self.horizon = horizon
        self.dt_s = dt_s
        self.factory = MessageFactory(distro)
        self.expert = ExpertDriver(distro=distro)
        self._period_s = 1.0 / cfg.policy_rate_hz
        self._substeps = cfg.substeps
        self._label_every = max(1, round(dt_s / self._period_s))
        # the twin decides every `rollout_period_s` (its command held in between): 2x fewer decisions than
        # the live expert's, for waypoint errors of a few cm (docs/loop.md)
        self._decide_every = max(1, round(rollout_period_s / self._period_s))

    def reset(self, scenario: str, seed: int) -> None:
        self.expert.reset(scenario, seed)

    def label(self, obs: Observation) -> ExpertLabel:
        st = obs.privileged
        command = self.expert.act(obs)  # the live expert follows every visited state: its lane choice stays coherent
        points = self._rollout(self.expert.clone(), st, obs.time_ns, command)
        e = st.ego
        c, s = math.cos(e.yaw), math.sin(e.yaw)
        dx, dy = points[:, 0] - e.x, points[:, 1] - e.y
        ego_frame = np.stack([c * dx + s * dy, -s * dx + c * dy], axis=1)
        return ExpertLabel(command, self.factory.path(obs.time_ns, ego_frame, "base_link"), near_miss(st))

    def _rollout(self, twin: ExpertDriver, st: PrivilegedState, t_ns: int, command: Any) -> np.ndarray:
        """Map-frame positions of the expert's rollout at t + k dt, k = 1..K."""
        e = st.ego
        x, y, yaw, v = e.x, e.y, e.yaw, e.speed
        period_ns = round(self._period_s * 1e9)
        out = np.empty((self.horizon, 2), dtype=np.float64)
        steps = self.horizon * self._label_every
        for k in range(1, steps + 1):
            x, y, yaw, v = self._drive(x, y, yaw, v, command, st)
            if k % self._label_every == 0:
                out[k // self._label_every - 1] = (x, y)
            if k == steps:
                break
            if k % self._decide_every:
                continue
            t = k * self._period_s
            moved = tuple(
                dataclasses.replace(a, x=a.x + a.speed * math.cos(a.yaw) * t, y=a.y + a.speed * math.sin(a.yaw) * t)
                for a in st.vehicles
            )
            ego = AgentState(x, y, yaw, v, e.length, e.width)
            future = dataclasses.replace(st, ego=ego, vehicles=moved)
            command = twin.act(Observation(t_ns + k * period_ns, {}, [], future, []))
        return out

    def _drive(self, x: float, y: float, yaw: float, v: float, command: Any, st: PrivilegedState) -> tuple[float, ...]:
        """One policy period of the backend's vehicle model under `command` (ROS frame, left positive)."""
        cfg = self.cfg
        dt = 1.0 / cfg.sim_rate_hz
        lo, hi = cfg.accel_range
        d = command.drive
        v_cmd, a_lim = float(d.speed), float(d.acceleration)
        delta = min(max(float(d.steering_angle), -cfg.max_steering_angle), cfg.max_steering_angle)
        beta = math.atan(0.5 * math.tan(delta))
        for _ in range(self._substeps):
            a = st.speed_gain * (v_cmd - v)
            if a_lim > 0:
                a = min(max(a, -a_lim), a_lim)
            a = min(max(a, lo), hi)
            x += v * math.cos(yaw + beta) * dt
            y += v * math.sin(yaw + beta) * dt
            yaw += v * math.sin(beta) / (st.wheelbase / 2.0) * dt
            v += a * dt
        return x, y, yaw, v
