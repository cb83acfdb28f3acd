"""Planar geometry on plain floats and numpy arrays: poses, interpolation, route look-ahead."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

import numpy as np

__all__ = [
    "OdomSample",
    "Pose2D",
    "Route",
    "bracket",
    "interpolate_odometry",
    "lookahead_point",
    "to_ego_frame",
    "wrap_angle",
    "yaw_of",
]


def wrap_angle(a: float) -> float:
    """`a` folded into [-pi, pi)."""
    return (a + math.pi) % (2.0 * math.pi) - math.pi


def yaw_of(qx: float, qy: float, qz: float, qw: float) -> float:
    """Heading (rotation about z) of a quaternion."""
    return math.atan2(2.0 * (qw * qz + qx * qy), 1.0 - 2.0 * (qy * qy + qz * qz))


@dataclass(frozen=True, slots=True)
class OdomSample:
    """One odometry message reduced to what features and labels need (map frame, SI units)."""

    stamp_ns: int
    x: float
    y: float
    yaw: float
    speed: float  # body-frame forward velocity (twist.linear.x)
    yaw_rate: float  # twist.angular.z


@dataclass(frozen=True, slots=True)
class Pose2D:
    """The ego pose interpolated to a frame stamp, with the velocity and acceleration around it."""

    stamp_ns: int
    x: float
    y: float
    yaw: float
    speed: float
    yaw_rate: float
    accel: float  # longitudinal, from the two odometry samples that bracket the stamp


def interpolate_odometry(a: OdomSample, b: OdomSample, t_ns: int) -> Pose2D:
    """Linear interpolation between `a` (at or before `t_ns`) and `b` (at or after); yaw the short way round."""
    span = b.stamp_ns - a.stamp_ns
    if span <= 0:
        return Pose2D(t_ns, a.x, a.y, a.yaw, a.speed, a.yaw_rate, 0.0)
    w = (t_ns - a.stamp_ns) / span
    yaw = wrap_angle(a.yaw + w * wrap_angle(b.yaw - a.yaw))
    return Pose2D(
        stamp_ns=t_ns,
        x=a.x + w * (b.x - a.x),
        y=a.y + w * (b.y - a.y),
        yaw=yaw,
        speed=a.speed + w * (b.speed - a.speed),
        yaw_rate=a.yaw_rate + w * (b.yaw_rate - a.yaw_rate),
        accel=(b.speed - a.speed) / (span * 1e-9),
    )


def to_ego_frame(pose: Pose2D, xy: np.ndarray) -> np.ndarray:
    """Map-frame points (..., 2) expressed in the ego frame of `pose` (x forward, y left)."""
    c, s = math.cos(pose.yaw), math.sin(pose.yaw)
    dx = xy[..., 0] - pose.x
    dy = xy[..., 1] - pose.y
    return np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)


class Route:
    """A route polyline (M, 2) in the map frame with its segment geometry computed once per message."""

    __slots__ = ("cum", "denom", "points", "seg", "seg_len")

    def __init__(self, points: np.ndarray) -> None:
        self.points = np.asarray(points, dtype=np.float64).reshape(-1, 2)
        self.seg = self.points[1:] - self.points[:-1]
        self.seg_len = np.hypot(self.seg[:, 0], self.seg[:, 1])
        self.denom = np.where(self.seg_len > 0, self.seg_len * self.seg_len, 1.0)
        self.cum = np.concatenate([[0.0], np.cumsum(self.seg_len)])

    def __len__(self) -> int:
        return len(self.points)


def lookahead_point(route: Route | np.ndarray, pose: Pose2D, lookahead_m: float) -> np.ndarray:
    """The map-frame point `lookahead_m` along the route from the route point closest to the ego.

    The closest point is the projection onto the nearest polyline segment; past the
    route's end the last segment is extended, so the target stays `lookahead_m` ahead.
    """
    r = route if isinstance(route, Route) else Route(route)
    pts, seg, seg_len, cum = r.points, r.seg, r.seg_len, r.cum
    if len(pts) == 1:
        return np.array(pts[0], dtype=np.float64)
    ex, ey = pose.x, pose.y
    u = ((ex - pts[:-1, 0]) * seg[:, 0] + (ey - pts[:-1, 1]) * seg[:, 1]) / r.denom
    np.clip(u, 0.0, 1.0, out=u)
    dx = pts[:-1, 0] + seg[:, 0] * u - ex
    dy = pts[:-1, 1] + seg[:, 1] * u - ey
    i = int(np.argmin(dx * dx + dy * dy))  # first minimum: deterministic on ties
    s_goal = cum[i] + u[i] * seg_len[i] + lookahead_m
    if s_goal >= cum[-1]:
        nonzero = np.flatnonzero(seg_len > 0)
        if len(nonzero) == 0:
            return np.array(pts[-1], dtype=np.float64)
        last = int(nonzero[-1])
        direction = seg[last] / seg_len[last]
        return np.asarray(pts[-1] + direction * (s_goal - cum[-1]), dtype=np.float64)
    j = int(np.searchsorted(cum, s_goal, side="right")) - 1
    j = min(max(j, 0), len(seg) - 1)
    frac = (s_goal - cum[j]) / seg_len[j] if seg_len[j] > 0 else 0.0
    return np.asarray(pts[j] + seg[j] * frac, dtype=np.float64)


class Stamped(Protocol):
    @property
    def stamp_ns(self) -> int: ...


S = TypeVar("S", bound=Stamped)


def bracket(samples: Sequence[S], t_ns: int) -> tuple[S, S] | None:
    """The samples before (or at) and at/after `t_ns` in a stamp-ordered sequence, or None."""
    lo, hi = 0, len(samples)
    while lo < hi:  # first index with stamp >= t
        mid = (lo + hi) // 2
        if samples[mid].stamp_ns < t_ns:
            lo = mid + 1
        else:
            hi = mid
    if lo == len(samples):
        return None
    b = samples[lo]
    if lo == 0:
        return (b, b) if b.stamp_ns == t_ns else None
    # on an exact hit the previous sample still gives the acceleration (interpolation weight is 1)
    return samples[lo - 1], b
