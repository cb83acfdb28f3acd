"""FrameSynchronizer: approximate time sync of camera, IMU, odometry and route, message by message.

It never looks ahead further than the messages already pushed, so the vehicle
runs it online and the dataset builder runs it over a bag and both get the same
frames from the same message sequence:

* camera mode: each camera frame (sub-sampled to `sample_rate_hz`) waits until an
  odometry message at or after its stamp arrives, then odometry is interpolated to
  the frame stamp (both bracketing samples within `sync_slop_s`);
* state-only mode (`camera: null`): frames are ticks of a `sample_rate_hz` clock
  aligned to multiples of the period, emitted as odometry passes them;
* the IMU over the frame interval (`imu_aggregate`: the latest sample at or before the
  stamp within slop, or the mean or median of the samples in (stamp - period, stamp]) and
  the latest route (when the spec reads a route topic) are attached;
* with an ego history (`ego_history_steps`), odometry at stamp - j * ego_history_dt_s is
  interpolated for each step j (the odometry of the last few seconds is kept for it);
* a frame with a stale or missing input is dropped and counted in `drops` by reason.
"""

from __future__ import annotations

import math
from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.features.geometry import OdomSample, Pose2D, Route, bracket, interpolate_odometry, wrap_angle
from roadloop_core.features.msg_fields import ImuConvention, ImuRef, ImuSample, OdomRef, route_points
from roadloop_core.stamps import header_stamp_ns

__all__ = ["DROP_REASONS", "Frame", "FrameSynchronizer"]

# Every reason a frame can be dropped for; counters report these names.
DROP_REASONS = (
    "camera_rate",  # sub-sampled to sample_rate_hz (not an error)
    "camera_out_of_order",
    "odometry_missing",  # no odometry at or before the stamp
    "odometry_stale",  # bracketing odometry farther than the slop
    "imu_missing",
    "imu_stale",
    "route_missing",
    "route_stale",
    "ego_history_missing",  # odometry does not reach back over the ego history (the first seconds)
    "end_of_stream",  # still waiting for odometry when the input ended
)

_KEEP_MIN_NS = 1_000_000_000  # odometry kept behind the newest stamp (more with an ego history)
_ROUTE_KEEP = 4


@dataclass(frozen=True)
class Frame:
    """One synchronized observation: inputs as of `stamp_ns` (ns, sensor clock)."""

    stamp_ns: int
    pose: Pose2D
    image: Any | None  # the sensor_msgs/Image message (camera mode)
    imu: ImuSample | None  # aggregated over the frame interval as the spec says
    route: Route | None  # map frame; None when the spec reads no route topic
    history: np.ndarray | None = None  # (P, 4) float64: speed, yaw rate, accel, heading change at t - j dt

    @property
    def route_xy(self) -> np.ndarray:
        """(M, 2) route points, map frame."""
        if self.route is None:
            raise ValueError("this frame has no route (the observation spec reads no route topic)")
        return self.route.points


def median_of_few(values: list[float]) -> float:
    """np.median of a handful of floats, bit for bit (NaN if any is NaN; the mean of the middle two when
    even), without numpy's ~50 us per call: the frame path takes one per IMU field per frame."""
    if any(math.isnan(v) for v in values):
        return math.nan
    ordered = sorted(values)
    k = len(ordered) // 2
    return ordered[k] if len(ordered) % 2 else (ordered[k - 1] + ordered[k]) / 2


class FrameSynchronizer:
    """Push messages with `push(role, msg)`; it returns the frames that became complete.

    `onboard`: the vehicle's synchronizer, which reads a route topic for a hindsight-trained model too
    (`ObservationSpec.route_role`); the dataset builder's computes hindsight route targets itself.
    """

    def __init__(self, spec: ObservationSpec, *, onboard: bool = False) -> None:
        self.spec = spec
        self.route_role = spec.route_role(onboard=onboard)
        self.drops: Counter[str] = Counter()
        self.emitted = 0
        self._roles = frozenset(spec.roles(onboard=onboard))
        self._yaw_offset = math.radians(spec.odometry_yaw_offset_deg)
        self._imu_convention = ImuConvention(spec.imu_frame, spec.imu_accel_unit)
        history = spec.history_ns + (round(spec.ego_history_dt_s * 1e9) if spec.ego_history_steps else 0)
        self._odom_keep_ns = max(_KEEP_MIN_NS, history + spec.period_ns + 2 * spec.slop_ns)
        self._imu_keep_ns = spec.period_ns + 2 * spec.slop_ns
        self._odom: deque[OdomRef] = deque()
        self._imu: deque[ImuRef] = deque()  # decoded only when a frame reads them
        self._routes: deque[tuple[int, Route]] = deque(maxlen=_ROUTE_KEEP)
        self._pending: deque[tuple[int, Any]] = deque()
        self._last_camera: int | None = None
        self._next_tick: int | None = None
        self._clock = -(2**62)  # newest stamp seen on any input

    def push(self, role: str, msg: Any, stamp_ns: int | None = None) -> list[Frame]:
        """Feed one decoded message of registry role `role` (stamp: `msg.header.stamp` unless given)."""
        spec = self.spec
        if role not in self._roles:
            return []
        t = header_stamp_ns(msg) if stamp_ns is None else stamp_ns
        if role != self.route_role:  # sensors drive the clock; a (latched) route's stamp says nothing about now
            self._clock = max(self._clock, t)
        if role == spec.odometry:
            return self._push_odometry(OdomRef(t, msg, self._yaw_offset))
        if role == spec.camera:
            self._push_camera(t, msg)
        elif role == spec.imu:
            if not self._imu or t >= self._imu[-1].stamp_ns:
                self._imu.append(ImuRef(t, msg, self._imu_convention))
                while self._imu[0].stamp_ns < t - self._imu_keep_ns:
                    self._imu.popleft()
        elif role == self.route_role:
            self._routes.append((t, Route(route_points(msg))))
        return self._expire()

    def flush(self) -> list[Frame]:
        """End of input: frames still waiting for odometry are dropped (`end_of_stream`)."""
        if self._pending:
            self.drops["end_of_stream"] += len(self._pending)
            self._pending.clear()
        return []

    # -- internals ---------------------------------------------------------------------------

    def _push_camera(self, t: int, msg: Any) -> None:
        last = self._last_camera
        if last is not None and t <= last:
            self.drops["camera_out_of_order"] += 1
            return
        # accept a frame once 3/4 of a sample period passed: a 10 Hz clock from 10, 20 or 30 Hz cameras
        if last is not None and (t - last) * 4 < self.spec.period_ns * 3:
            self.drops["camera_rate"] += 1
            return
        self._last_camera = t
        self._pending.append((t, msg))

    def _push_odometry(self, sample: OdomRef) -> list[Frame]:
        if self._odom and sample.stamp_ns <= self._odom[-1].stamp_ns:
            return self._expire()  # duplicate or out-of-order odometry carries nothing new
        prev = self._odom[-1] if self._odom else None
        self._odom.append(sample)
        while len(self._odom) > 2 and self._odom[1].stamp_ns < sample.stamp_ns - self._odom_keep_ns:
            self._odom.popleft()
        out: list[Frame] = []
        if self.spec.state_only:
            period = self.spec.period_ns
            if self._next_tick is None:
                self._next_tick = -(-sample.stamp_ns // period) * period
            while self._next_tick <= sample.stamp_ns:
                tick = self._next_tick
                self._next_tick += period
                if prev is None and tick < sample.stamp_ns:
                    continue
                frame = self._assemble(tick, None)
                if frame is not None:
                    out.append(frame)
            return out
        while self._pending and self._pending[0][0] <= sample.stamp_ns:
            t, msg = self._pending.popleft()
            frame = self._assemble(t, msg)
            if frame is not None:
                out.append(frame)
        return out + self._expire()

    def _expire(self) -> list[Frame]:
        """Camera frames whose odometry is more than the slop late will never be complete."""
        slop = self.spec.slop_ns
        while self._pending and self._clock - self._pending[0][0] > slop:
            self._pending.popleft()
            self.drops["odometry_stale" if self._odom else "odometry_missing"] += 1
        return []

    def _assemble(self, t: int, image: Any | None) -> Frame | None:
        spec = self.spec
        slop = spec.slop_ns
        br = bracket(self._odom, t)
        if br is None:
            self.drops["odometry_missing"] += 1
            return None
        a, b = br
        if b.stamp_ns == t and spec.imu is not None:
            a = b  # exact hit: with an IMU the previous sample (only there for acceleration) is not read
        if b.stamp_ns - t > slop or (t - a.stamp_ns > slop and b.stamp_ns != t):
            self.drops["odometry_stale"] += 1
            return None
        imu: ImuSample | None = None
        if spec.imu is not None:
            latest = next((m for m in reversed(self._imu) if m.stamp_ns <= t), None)
            if latest is None:
                self.drops["imu_missing"] += 1
                return None
            if t - latest.stamp_ns > slop:
                self.drops["imu_stale"] += 1
                return None
            imu = self._imu_over_frame(t, latest)
        route: Route | None = None
        if self.route_role is not None:
            stamped = next((r for r in reversed(self._routes) if r[0] <= t), None)
            if stamped is None or len(stamped[1]) == 0:
                self.drops["route_missing"] += 1
                return None
            if spec.route_max_age_s is not None and t - stamped[0] > spec.route_max_age_s * 1e9:
                self.drops["route_stale"] += 1
                return None
            route = stamped[1]
        pose = interpolate_odometry(a.sample(), b.sample(), t)
        history: np.ndarray | None = None
        if spec.ego_history_steps:
            history = self._history(pose)
            if history is None:
                self.drops["ego_history_missing"] += 1
                return None
        self.emitted += 1
        return Frame(t, pose, image, imu, route, history)

    def _imu_over_frame(self, t: int, latest: ImuRef) -> ImuSample:
        """The frame's IMU reading: the latest sample, or the mean/median of those in (t - period, t]
        (a single spike moves a median not at all and a mean by 1/n; the latest sample when none is in it)."""
        if self.spec.imu_aggregate == "latest":
            return latest.sample()
        lo = t - self.spec.period_ns
        window = [m.sample() for m in self._imu if lo < m.stamp_ns <= t]
        if len(window) <= 1:
            return latest.sample()
        if self.spec.imu_aggregate == "median":
            columns = ([s.yaw_rate for s in window], [s.accel_x for s in window], [s.accel_y for s in window])
            yaw_rate, accel_x, accel_y = (median_of_few(c) for c in columns)
            return ImuSample(t, yaw_rate, accel_x, accel_y)
        mean = np.array([(s.yaw_rate, s.accel_x, s.accel_y) for s in window], dtype=np.float64).mean(axis=0)
        return ImuSample(t, float(mean[0]), float(mean[1]), float(mean[2]))

    def _odometry_at(self, t: int) -> OdomSample | Pose2D | None:
        """Odometry at `t`, interpolated between samples within the slop of it (None if there are none)."""
        br = bracket(self._odom, t)
        if br is None:
            return None
        a, b = br
        if b.stamp_ns == t:
            return b.sample()
        if b.stamp_ns - t > self.spec.slop_ns or t - a.stamp_ns > self.spec.slop_ns:
            return None
        return interpolate_odometry(a.sample(), b.sample(), t)

    def _history(self, pose: Pose2D) -> np.ndarray | None:
        """(P, 4): speed, yaw rate (odometry twist), longitudinal acceleration (the speed change over the
        step before) and heading change up to now, at t - j * dt for j = 1..P; None if odometry is missing."""
        spec = self.spec
        dt = round(spec.ego_history_dt_s * 1e9)
        past = [self._odometry_at(pose.stamp_ns - j * dt) for j in range(1, spec.ego_history_steps + 2)]
        if any(p is None for p in past):
            return None
        out = np.empty((spec.ego_history_steps, 4), dtype=np.float64)
        for j in range(spec.ego_history_steps):
            now, before = past[j], past[j + 1]
            assert now is not None and before is not None
            out[j] = (now.speed, now.yaw_rate, (now.speed - before.speed) / spec.ego_history_dt_s,
                      wrap_angle(pose.yaw - now.yaw))  # fmt: skip
        return out
