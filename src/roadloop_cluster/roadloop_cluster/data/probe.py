"""BagProbe: the samples the bag checks look at, gathered from the message stream the builder reads anyway.

Every message's header stamp and receive time are kept (rates, gaps, coverage, clocks: no decoding,
the stamp is read from the CDR bytes). For the frame conventions, a few messages are decoded on a
time grid: up to 200 windows spread over the bag, each 0.2 s long, where the probe takes the
odometry at both ends (direction of travel, heading rate, speed from positions), the IMU five
times (yaw rate, accelerations) and the command label once (steering, speed). Which messages are
decoded depends only on their stamps, so `data check` and `data build` see the same samples and
come to the same findings; decoding stays bounded (about 1600 messages) whatever the bag's length.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from roadloop_cluster.data.config import DatasetConfig
from roadloop_cluster.data.conventions import (
    Finding,
    accel_unit_finding,
    clock_finding,
    coverage_finding,
    gap_finding,
    heading_finding,
    imu_yaw_finding,
    label_speed_finding,
    measured_rate_hz,
    rate_finding,
    steering_finding,
    twist_finding,
    twist_yaw_finding,
)
from roadloop_core.features.geometry import wrap_angle, yaw_of
from roadloop_core.features.msg_fields import ImuConvention, imu_sample
from roadloop_core.registry import TopicRegistry
from roadloop_core.stamps import header_stamp_ns

__all__ = ["BagProbe"]

_MAX_WINDOWS = 200
_WINDOW_MIN_NS = 250_000_000
_CHORD_NS = 200_000_000
# where in a window each kind of role is decoded (fractions of the chord)
_OFFSETS = {"odometry": (0.0, 1.0), "imu": (0.0, 0.25, 0.5, 0.75, 1.0), "label": (0.5,)}


class _Grid:
    """Decode the first message at or after each target time: window g starts at origin + g * window."""

    def __init__(self, origin_ns: int, window_ns: int, chord_ns: int, offsets: tuple[float, ...]) -> None:
        self.origin, self.window_ns, self.offsets = origin_ns, window_ns, [round(o * chord_ns) for o in offsets]
        self.g, self.j = 0, 0

    def target(self) -> int:
        return self.origin + self.g * self.window_ns + self.offsets[self.j]

    def take(self, stamp: int) -> tuple[int, int] | None:
        """(window, slot) if this message is the one to decode, else None."""
        if self.g >= _MAX_WINDOWS or stamp < self.target():
            return None
        hit = (self.g, self.j)
        while self.g < _MAX_WINDOWS and self.target() <= stamp:
            self.j += 1
            if self.j == len(self.offsets):
                self.g, self.j = self.g + 1, 0
        return hit


@dataclass
class _Stream:
    topic: str
    stamps: list[int] = field(default_factory=list)  # header stamps
    received: list[int] = field(default_factory=list)  # bag receive times


def _stamp(msg: Any) -> int:
    peeked = getattr(msg, "stamp_ns", None)  # a LazyMessage reads it from the CDR bytes
    return int(peeked) if isinstance(peeked, int) else header_stamp_ns(msg)


class BagProbe:
    """`observe(role, receive_ns, msg)` for each message read; `findings()` at the end of the bag."""

    def __init__(self, cfg: DatasetConfig, registry: TopicRegistry, roles: list[str], start_ns: int, end_ns: int):
        self.cfg, self.registry = cfg, registry
        self.start_ns, self.end_ns = start_ns, end_ns
        self.streams = {r: _Stream(registry[r].name) for r in roles}
        spec = cfg.observation
        span = max(end_ns - start_ns, 1)
        windows = max(1, min(_MAX_WINDOWS, span // _WINDOW_MIN_NS))
        window = span // windows
        chord = min(_CHORD_NS, window)
        self.kinds: dict[str, str] = {spec.odometry: "odometry"}
        if spec.imu is not None:
            self.kinds[spec.imu] = "imu"
        label = cfg.build.labels.command
        if registry[label].type == "ackermann_msgs/msg/AckermannDriveStamped":
            self.kinds[label] = "label"
        # one origin for every grid (the bag's first receive time), so the IMU's windows are the odometry's
        self.grids = {
            r: _Grid(start_ns, window, chord, _OFFSETS[k]) for r, k in self.kinds.items() if r in self.streams
        }
        self.odometry: dict[tuple[int, int], tuple[float, ...]] = {}  # (window, end) -> t, x, y, yaw, vx, wz
        self.imu: list[tuple[int, float, float, float, float]] = []  # t, wz, ax, ay, az (as logged)
        self.labels: list[tuple[int, float, float]] = []  # t, steering_angle, speed

    def observe(self, role: str, receive_ns: int, msg: Any) -> None:
        stream = self.streams.get(role)
        if stream is None:
            return
        t = _stamp(msg)
        stream.stamps.append(t)
        stream.received.append(receive_ns)
        grid = self.grids.get(role)
        if grid is None:
            return
        hit = grid.take(t)
        if hit is None:
            return
        kind = self.kinds[role]
        if kind == "odometry":
            p, q = msg.pose.pose.position, msg.pose.pose.orientation
            yaw = yaw_of(float(q.x), float(q.y), float(q.z), float(q.w))
            twist = msg.twist.twist
            self.odometry[hit] = (t / 1e9, float(p.x), float(p.y), yaw, float(twist.linear.x), float(twist.angular.z))
        elif kind == "imu":
            s = imu_sample(msg, t)
            self.imu.append((t, s.yaw_rate, s.accel_x, s.accel_y, float(msg.linear_acceleration.z)))
        else:
            self.labels.append((t, float(msg.drive.steering_angle), float(msg.drive.speed)))

    # -- findings ----------------------------------------------------------------------------

    def findings(self) -> list[Finding]:
        motion = [f for f in self._motion_findings() if f is not None]
        return self._stream_findings() + motion

    def _subject(self, role: str) -> str:
        return f"{self.registry[role].name} ({role})"

    def _stream_findings(self) -> list[Finding]:
        reg, c = self.registry, self.cfg.check
        out: list[Finding] = []
        offsets: dict[str, float] = {}
        for role, s in self.streams.items():
            spec = reg[role]
            if not s.stamps or spec.qos.transient_local:  # a latched topic (a route) is republished at will
                continue
            stamps = np.asarray(s.stamps, dtype=np.int64)
            subject = self._subject(role)
            found = [
                rate_finding(subject, role, measured_rate_hz(stamps), spec.rate_hz, reg.stale_factor, c.rate_tolerance),
                gap_finding(subject, role, stamps, spec.stale_after_s(reg.stale_factor)),
                coverage_finding(subject, min(s.received), max(s.received), self.start_ns, self.end_ns),
            ]
            out += [f for f in found if f is not None]
            offsets[s.topic] = float(np.median(np.asarray(s.received, np.int64) - stamps)) / 1e9
        clock = clock_finding(offsets, c.max_clock_skew_s)
        return out + ([clock] if clock else [])

    def _pairs(self) -> np.ndarray:
        """(n, 10) per window: mid time, heading, heading rate, travel direction, travel speed, twist speed,
        speed change rate, start and end time, twist yaw rate (seconds, radians, metres)."""
        rows = []
        for (g, end), a in sorted(self.odometry.items()):
            b = self.odometry.get((g, 1)) if end == 0 else None
            if b is None or b[0] <= a[0]:
                continue
            dt = b[0] - a[0]
            dx, dy = b[1] - a[1], b[2] - a[2]
            turn = wrap_angle(b[3] - a[3])
            rows.append((
                (a[0] + b[0]) / 2, wrap_angle(a[3] + turn / 2), turn / dt, math.atan2(dy, dx),
                math.hypot(dx, dy) / dt, (a[4] + b[4]) / 2, (b[4] - a[4]) / dt, a[0], b[0], (a[5] + b[5]) / 2,
            ))  # fmt: skip
        return np.asarray(rows, dtype=np.float64).reshape(-1, 10)

    def _motion_findings(self) -> list[Finding | None]:
        spec, c, labels_cfg = self.cfg.observation, self.cfg.check, self.cfg.build.labels
        if spec.odometry not in self.streams:
            return []  # no odometry in the bag: its missing_topic error says so, there is no motion to judge
        pairs = self._pairs()
        odom = self._subject(spec.odometry)
        t_mid, heading, rate, direction, speed, twist, accel, t_a, t_b, twist_rate = pairs.T
        out: list[Finding | None] = [
            heading_finding(odom, heading, direction, speed, spec.odometry_yaw_offset_deg,
                            c.heading_tolerance_deg, c.heading_report_deg, c.min_speed_mps),
            twist_finding(odom, twist, speed, c.min_speed_mps),
            twist_yaw_finding(odom, twist_rate, rate),
        ]  # fmt: skip
        if spec.imu is not None and spec.imu in self.streams and self.imu:
            imu = np.asarray(self.imu, dtype=np.float64)
            conv = ImuConvention(spec.imu_frame, spec.imu_accel_unit)
            stamps = imu[:, 0] / 1e9
            yaw, ax, matched_rate, matched_accel = [], [], [], []
            for i in range(len(pairs)):
                inside = (stamps >= t_a[i]) & (stamps <= t_b[i])
                if inside.any():
                    yaw.append(conv.yaw * float(imu[inside, 1].mean()))
                    ax.append(float(imu[inside, 2].mean()))
                    matched_rate.append(rate[i])
                    matched_accel.append(accel[i])
            subject = self._subject(spec.imu)
            out.append(imu_yaw_finding(subject, np.asarray(yaw), np.asarray(matched_rate), spec.imu_frame,
                                       c.min_yaw_rate_correlation))  # fmt: skip
            out.append(accel_unit_finding(subject, imu[:, 4], np.asarray(ax), np.asarray(matched_accel),
                                          spec.imu_frame, spec.imu_accel_unit))  # fmt: skip
        if self.labels and len(pairs):
            lab = np.asarray(self.labels, dtype=np.float64)
            lab_t = lab[:, 0] / 1e9
            after = np.clip(np.searchsorted(lab_t, t_mid), 0, len(lab_t) - 1)
            before = np.clip(after - 1, 0, len(lab_t) - 1)
            idx = np.where(np.abs(lab_t[before] - t_mid) < np.abs(lab_t[after] - t_mid), before, after)
            near = np.abs(lab_t[idx] - t_mid) <= labels_cfg.slop_s
            moving = near & (speed >= c.min_speed_mps)
            # the twist's yaw rate where there is one (less noisy than the heading's change over 0.2 s)
            yaw_rate = twist_rate if float(np.std(twist_rate)) > 1e-6 else rate
            road_wheel = np.arctan(c.wheelbase_m * yaw_rate[moving] / speed[moving])
            subject = f"{self._subject(labels_cfg.command)}, build.labels.command"
            out.append(steering_finding(subject, lab[idx[moving], 1], road_wheel, labels_cfg.steering_ratio,
                                        c.wheelbase_m))  # fmt: skip
            out.append(label_speed_finding(subject, lab[idx[near], 2], speed[near], c.min_speed_mps))
        return out
