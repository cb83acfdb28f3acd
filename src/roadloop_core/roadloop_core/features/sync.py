"""FrameSynchronizer: approximate time sync of camera, IMU, odometry and route, message by message.

It never looks ahead further than the messages already pushed, so the vehicle
runs it online and the dataset builder runs it over a bag and both get the same
frames from the same message sequence:

* camera mode: each camera frame (sub-sampled to `sample_rate_hz`) waits until an
  odometry message at or after its stamp arrives, then odometry is interpolated to
  the frame stamp (both bracketing samples within `sync_slop_s`);
* state-only mode (`camera: null`): frames are ticks of a `sample_rate_hz` clock
  aligned to multiples of the period, emitted as odometry passes them;
* the latest IMU message at or before the stamp (within slop) and the latest route
  are attached; a frame with a stale or missing input is dropped and counted in
  `drops` by reason.
"""

from __future__ import annotations

from collections import Counter, deque
from dataclasses import dataclass
from typing import Any

import numpy as np

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.features.geometry import Pose2D, Route, bracket, interpolate_odometry
from roadloop_core.features.msg_fields import ImuSample, OdomRef, imu_sample, route_points
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
    "end_of_stream",  # still waiting for odometry when the input ended
)

_ODOM_KEEP = 512
_IMU_KEEP = 128
_ROUTE_KEEP = 4


@dataclass(frozen=True)
class Frame:
    """One synchronized observation: inputs as of `stamp_ns` (ns, sensor clock)."""

    stamp_ns: int
    pose: Pose2D
    image: Any | None  # the sensor_msgs/Image message (camera mode)
    imu: ImuSample | None
    route: Route  # map frame

    @property
    def route_xy(self) -> np.ndarray:
        """(M, 2) route points, map frame."""
        return self.route.points


class FrameSynchronizer:
    """Push messages with `push(role, msg)`; it returns the frames that became complete."""

    def __init__(self, spec: ObservationSpec) -> None:
        self.spec = spec
        self.drops: Counter[str] = Counter()
        self.emitted = 0
        self._odom: deque[OdomRef] = deque(maxlen=_ODOM_KEEP)
        self._imu: deque[tuple[int, Any]] = deque(maxlen=_IMU_KEEP)  # (stamp, message): read only when used
        self._routes: deque[tuple[int, Route]] = deque(maxlen=_ROUTE_KEEP)
        self._pending: deque[tuple[int, Any]] = deque()
        self._last_camera: int | None = None
        self._next_tick: int | None = None
        self._clock = -(2**62)  # newest stamp seen on any input

    def push(self, role: str, msg: Any, stamp_ns: int | None = None) -> list[Frame]:
        """Feed one decoded message of registry role `role` (stamp: `msg.header.stamp` unless given)."""
        spec = self.spec
        if role not in (spec.camera, spec.imu, spec.odometry, spec.route):
            return []
        t = header_stamp_ns(msg) if stamp_ns is None else stamp_ns
        if role != spec.route:  # sensors drive the clock; a (latched) route's stamp says nothing about now
            self._clock = max(self._clock, t)
        if role == spec.odometry:
            return self._push_odometry(OdomRef(t, msg))
        if role == spec.camera:
            self._push_camera(t, msg)
        elif role == spec.imu:
            if not self._imu or t >= self._imu[-1][0]:
                self._imu.append((t, msg))
        elif role == spec.route:
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
            latest = next((m for m in reversed(self._imu) if m[0] <= t), None)
            if latest is None:
                self.drops["imu_missing"] += 1
                return None
            if t - latest[0] > slop:
                self.drops["imu_stale"] += 1
                return None
            imu = imu_sample(latest[1], latest[0])
        route = next((r for r in reversed(self._routes) if r[0] <= t), None)
        if route is None or len(route[1]) == 0:
            self.drops["route_missing"] += 1
            return None
        if spec.route_max_age_s is not None and t - route[0] > spec.route_max_age_s * 1e9:
            self.drops["route_stale"] += 1
            return None
        self.emitted += 1
        return Frame(t, interpolate_odometry(a.sample(), b.sample(), t), image, imu, route[1])
