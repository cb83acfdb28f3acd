"""The expert driver: privileged state in, the same AckermannDriveStamped a policy publishes out.

- lateral: pure pursuit on the target lane's centreline (lookahead grows with speed);
- longitudinal: IDM car following behind the leader in the target lane, with the free-road
  speed capped by the scenario's cruise speed and by the curvature ahead (lateral accel limit);
- lane changes: MOBIL-style — change when the side lane lets us accelerate clearly more, and
  only if the gaps to the new leader and follower are safe (the follower needs not brake hard).
Also publishes its plan (the target lane 30 m ahead) as `last_trajectory`.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from roadloop_sim.geometry import point_at, project, project_many, to_ego
from roadloop_sim.protocol import AgentState, Observation, PrivilegedState
from roadloop_sim.sensor_messages import MessageFactory

__all__ = ["ExpertConfig", "ExpertDriver"]

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True)
class ExpertConfig:
    a_max: float = 2.0  # IDM maximum acceleration, m/s^2 (below the 2.4 comfort limit)
    b_comf: float = 3.0  # IDM comfortable deceleration, m/s^2
    time_headway: float = 1.5  # s
    min_gap: float = 6.0  # m, bumper to bumper at standstill
    lat_accel_max: float = 2.5  # m/s^2, caps speed in curves
    lookahead_min: float = 7.0  # m
    lookahead_gain: float = 0.6  # s, lookahead = max(min, gain * v)
    lane_halfwidth: float = 2.0  # m, a vehicle within halfwidth + its own half width is in the lane
    change_gain: float = 0.4  # m/s^2 of extra acceleration a lane change must bring
    change_cooldown_s: float = 3.0
    safe_follower_decel: float = 2.0  # m/s^2 the new follower may need at most
    min_change_gap: float = 8.0  # m to the new leader and follower
    jerk_max: float = 3.0  # m/s^3, comfort
    emergency_jerk: float = 30.0  # m/s^3 when braking harder than b_comf is needed
    period_s: float = 0.1  # the policy period until two decisions have shown the real one
    change_min_speed: float = 1.0  # m/s: no lane changes below it (a standstill is no time to swerve)


class _LaneView:
    """Where the ego and the other vehicles are along one lane (windowed projection: loops are safe)."""

    def __init__(self, poly: FloatArray) -> None:
        self.poly = poly
        self.s = np.concatenate([[0.0], np.cumsum(np.hypot(*np.diff(poly, axis=0).T))])
        self.s_ego: float | None = None

    def window(self, lo: float, hi: float) -> tuple[FloatArray, FloatArray]:
        i0 = max(0, int(np.searchsorted(self.s, lo)) - 1)
        i1 = min(len(self.poly), int(np.searchsorted(self.s, hi)) + 1)
        i1 = max(i1, min(len(self.poly), i0 + 2))
        return self.poly[i0:i1], self.s[i0:i1]

    def locate_ego(self, x: float, y: float) -> tuple[float, float]:
        if self.s_ego is None:
            s, lat = project(self.poly, self.s, x, y)
        else:
            s, lat = project(*self.window(self.s_ego - 20.0, self.s_ego + 40.0), x, y)
        self.s_ego = s
        return s, lat


class ExpertDriver:
    """Rule-based expert using privileged simulator state (see module docstring)."""

    name = "expert"
    wants_raw = False

    def __init__(self, config: ExpertConfig | None = None, distro: str = "jazzy") -> None:
        self.cfg = config or ExpertConfig()
        self.factory = MessageFactory(distro)
        self.last_trajectory: Any = None
        self._views: list[_LaneView] = []
        self._lanes_id: int | None = None
        self._target = 0
        self._last_change_t = -1e9
        self._a_prev = 0.0
        self._period = self.cfg.period_s
        self._t_prev: int | None = None
        self.publishes_plan = True  # a rollout twin (`clone`) skips building the Path message

    def clone(self) -> ExpertDriver:
        """A twin in this expert's exact decision state (target lane, jerk limiter, lane positions) whose
        decisions do not touch this one: what a rollout of the expert's intended future drives."""
        twin = copy.copy(self)
        twin._views = [copy.copy(v) for v in self._views]
        twin.publishes_plan = False
        return twin

    def reset(self, scenario: str, seed: int) -> None:
        self._views = []
        self._lanes_id = None
        self.last_trajectory = None
        self._last_change_t = -1e9
        self._a_prev = 0.0
        self._t_prev = None

    # ------------------------------------------------------------------------------ decision
    def act(self, obs: Observation) -> Any:
        st = obs.privileged
        t = obs.time_ns * 1e-9
        if self._t_prev is not None and obs.time_ns > self._t_prev:
            self._period = (obs.time_ns - self._t_prev) / 1e9  # the policy period, whatever the rate
        self._t_prev = obs.time_ns
        if self._lanes_id != id(st.lanes):
            self._views = [_LaneView(p) for p in st.lanes]
            self._lanes_id = id(st.lanes)
            self._target = self._nearest_lane(st)
        ego = st.ego
        located = [v.locate_ego(ego.x, ego.y) for v in self._views]
        near = [a for a in st.vehicles if abs(a.x - ego.x) + abs(a.y - ego.y) < 150.0]
        v0 = self._free_speed(st, self._target, located[self._target][0])
        acc = {i: self._lane_accel(st, i, located[i][0], near, v0) for i in self._candidate_lanes()}
        current = self._nearest_lane(st)
        settled = current == self._target and abs(located[self._target][1]) < 0.8
        if settled and t - self._last_change_t > self.cfg.change_cooldown_s and ego.speed > self.cfg.change_min_speed:
            best = self._target
            for i in (self._target - 1, self._target + 1):
                if (
                    i in acc
                    and acc[i] > acc[best] + self.cfg.change_gain
                    and self._safe_to_enter(st, i, located[i][0], near)
                ):
                    best = i
            if best != self._target:
                self._target = best
                self._last_change_t = t
        # stay behind whatever is in the lane we leave until the change is done
        a = (
            acc[self._target]
            if current == self._target
            else min(acc[self._target], acc.get(current, acc[self._target]))
        )
        a = self._limit_jerk(a)
        steer = self._pure_pursuit(st, self._target, located[self._target][0], changing=current != self._target)
        # aim past the speed we want and cap |accel| (AckermannDrive.acceleration): the backend's
        # speed loop then applies `a` evenly over the whole period instead of a decaying sawtooth
        speed = max(0.0, ego.speed + a * (1.0 / st.speed_gain + self._period))
        if self.publishes_plan:
            self._plan(obs.time_ns, self._target, located[self._target][0])
        return self.factory.command(obs.time_ns, steer, speed, max(abs(a), 1e-3))

    def _limit_jerk(self, a: float) -> float:
        """Rate-limit the acceleration (comfort), except a drop towards hard braking (safety first)."""
        c = self.cfg
        step = c.jerk_max * self._period
        prev = self._a_prev
        if a > prev:
            a = min(a, prev + step)
        elif a > -c.b_comf:
            a = max(a, prev - step)
        else:
            a = max(a, prev - c.emergency_jerk * self._period)
        self._a_prev = a
        return a

    def _candidate_lanes(self) -> list[int]:
        return [i for i in (self._target - 1, self._target, self._target + 1) if 0 <= i < len(self._views)]

    def _nearest_lane(self, st: PrivilegedState) -> int:
        best, best_d = 0, math.inf
        for i, view in enumerate(self._views):
            if view.s_ego is None:
                d = abs(project(view.poly, view.s, st.ego.x, st.ego.y)[1])
            else:
                d = abs(project(*view.window(view.s_ego - 20.0, view.s_ego + 40.0), st.ego.x, st.ego.y)[1])
            if d < best_d:
                best, best_d = i, d
        return best

    # ------------------------------------------------------------------------------ longitudinal
    def _free_speed(self, st: PrivilegedState, lane: int, s_ego: float) -> float:
        """Cruise speed, capped where the lane ahead curves (v^2 kappa <= lat_accel_max)."""
        view = self._views[lane]
        horizon = max(25.0, st.ego.speed * 3.0)
        poly, _ = view.window(s_ego, s_ego + horizon)
        v = st.speed_limit
        pts = poly[::4]  # ~4 m baseline: lane joints make 1 m samples kink
        if len(pts) >= 3:
            d = np.diff(pts, axis=0)
            heading = np.unwrap(np.arctan2(d[:, 1], d[:, 0]))
            seg = np.maximum(np.hypot(d[:, 0], d[:, 1]), 1e-6)
            kappa = np.abs(np.diff(heading)) / (0.5 * (seg[1:] + seg[:-1]))
            k = float(np.max(kappa))
            if k > 1e-4:
                v = min(v, math.sqrt(self.cfg.lat_accel_max / k))
        return v

    def _in_lane(self, view: _LaneView, s_ego: float, agents: list[AgentState]) -> list[tuple[float, AgentState]]:
        """(signed gap along the lane, bumper to bumper) of the agents in this lane near the ego."""
        if not agents:
            return []
        poly, s = view.window(s_ego - 60.0, s_ego + 120.0)
        xs = np.fromiter((a.x for a in agents), dtype=np.float64, count=len(agents))
        ys = np.fromiter((a.y for a in agents), dtype=np.float64, count=len(agents))
        sa, lat = project_many(poly, s, xs, ys)
        return [
            (float(sa[k]) - s_ego, a)
            for k, a in enumerate(agents)
            if abs(float(lat[k])) < self.cfg.lane_halfwidth + a.width / 2.0 - 0.3
        ]

    def _idm(self, v: float, v0: float, gap: float | None, v_lead: float) -> float:
        c = self.cfg
        free = max(1.0 - (v / max(v0, 0.1)) ** 4, -c.b_comf / c.a_max)  # too fast: brake comfortably
        if gap is None:
            return c.a_max * free
        s_star = c.min_gap + max(0.0, v * c.time_headway + v * (v - v_lead) / (2.0 * math.sqrt(c.a_max * c.b_comf)))
        return c.a_max * (free - (s_star / max(gap, 0.1)) ** 2)

    def _leader(
        self, st: PrivilegedState, lane: int, s_ego: float, near: list[AgentState]
    ) -> tuple[float, float] | None:
        best: tuple[float, float] | None = None
        for ds, a in self._in_lane(self._views[lane], s_ego, near):
            gap = ds - (a.length + st.ego.length) / 2.0
            if ds > 0 and (best is None or gap < best[0]):
                best = (gap, a.speed)
        return best

    def _lane_accel(self, st: PrivilegedState, lane: int, s_ego: float, near: list[AgentState], v0: float) -> float:
        lead = self._leader(st, lane, s_ego, near)
        a = self._idm(st.ego.speed, v0, lead[0] if lead else None, lead[1] if lead else 0.0)
        return max(a, -9.0)

    def _safe_to_enter(self, st: PrivilegedState, lane: int, s_ego: float, near: list[AgentState]) -> bool:
        c = self.cfg
        for ds, a in self._in_lane(self._views[lane], s_ego, near):
            gap = abs(ds) - (a.length + st.ego.length) / 2.0
            if gap < c.min_change_gap:
                return False
            if ds < 0:  # the new follower: how hard would it brake behind us?
                if self._idm(a.speed, max(a.speed, 1.0), gap, st.ego.speed) < -c.safe_follower_decel:
                    return False
            elif self._idm(st.ego.speed, st.speed_limit, gap, a.speed) < -c.safe_follower_decel:
                return False
        return True

    # ------------------------------------------------------------------------------ lateral
    def _pure_pursuit(self, st: PrivilegedState, lane: int, s_ego: float, changing: bool = False) -> float:
        view = self._views[lane]
        ego = st.ego
        ld = max(self.cfg.lookahead_min, self.cfg.lookahead_gain * ego.speed)
        if changing:  # a longer lookahead while changing lanes: a gentle S instead of a swerve
            ld = max(ld, 2.0 * self.cfg.lookahead_min, 1.0 * ego.speed)
        tx, ty, _ = point_at(view.poly, view.s, s_ego + ld)
        ex, ey = to_ego(tx, ty, ego.x, ego.y, ego.yaw)
        dist2 = max(ex * ex + ey * ey, 1e-6)
        kappa = 2.0 * ey / dist2
        steer = math.atan(st.wheelbase * kappa)
        lim = st.max_steering_angle
        return min(max(steer, -lim), lim)

    def _plan(self, stamp_ns: int, lane: int, s_ego: float) -> None:
        view = self._views[lane]
        pts = np.array([point_at(view.poly, view.s, s_ego + d)[:2] for d in np.arange(0.0, 31.0, 2.0)])
        self.last_trajectory = self.factory.path(stamp_ns, pts)
