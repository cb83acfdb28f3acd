"""Pure 2-D geometry on polylines (map frame) shared by the backends, the drivers and the metrics."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

__all__ = ["arc_lengths", "point_at", "project", "project_many", "to_ego", "wrap_angle", "yaw_to_quaternion"]

FloatArray = npt.NDArray[np.float64]


def wrap_angle(a: float) -> float:
    """Angle wrapped to (-pi, pi]."""
    return math.atan2(math.sin(a), math.cos(a))


def yaw_to_quaternion(yaw: float) -> tuple[float, float, float, float]:
    """(x, y, z, w) of a rotation by `yaw` about z."""
    return (0.0, 0.0, math.sin(yaw / 2.0), math.cos(yaw / 2.0))


def arc_lengths(poly: FloatArray) -> FloatArray:
    """Cumulative arc length at each vertex of an (N, 2) polyline (starts at 0)."""
    if len(poly) < 2:
        return np.zeros(len(poly))
    seg = np.hypot(np.diff(poly[:, 0]), np.diff(poly[:, 1]))
    return np.concatenate([[0.0], np.cumsum(seg)])


def project(poly: FloatArray, s: FloatArray, x: float, y: float) -> tuple[float, float]:
    """(arc length, signed lateral offset, + = left) of the closest point of the polyline to (x, y)."""
    a = poly[:-1]
    d = poly[1:] - a
    len2 = np.maximum((d * d).sum(axis=1), 1e-12)
    t = np.clip(((x - a[:, 0]) * d[:, 0] + (y - a[:, 1]) * d[:, 1]) / len2, 0.0, 1.0)
    px = a[:, 0] + t * d[:, 0]
    py = a[:, 1] + t * d[:, 1]
    dist2 = (px - x) ** 2 + (py - y) ** 2
    i = int(np.argmin(dist2))
    cross = d[i, 0] * (y - a[i, 1]) - d[i, 1] * (x - a[i, 0])
    lateral = math.copysign(math.sqrt(float(dist2[i])), float(cross))
    return float(s[i] + t[i] * math.sqrt(float(len2[i]))), lateral


def project_many(poly: FloatArray, s: FloatArray, xs: FloatArray, ys: FloatArray) -> tuple[FloatArray, FloatArray]:
    """`project` of many points at once (the same arithmetic per point, so the same results): (M,) arc
    lengths and (M,) signed lateral offsets."""
    a = poly[:-1]
    d = poly[1:] - a
    len2 = np.maximum((d * d).sum(axis=1), 1e-12)
    x, y = np.asarray(xs, dtype=np.float64)[:, None], np.asarray(ys, dtype=np.float64)[:, None]
    t = np.clip(((x - a[:, 0]) * d[:, 0] + (y - a[:, 1]) * d[:, 1]) / len2, 0.0, 1.0)
    px = a[:, 0] + t * d[:, 0]
    py = a[:, 1] + t * d[:, 1]
    dist2 = (px - x) ** 2 + (py - y) ** 2
    i = np.argmin(dist2, axis=1)
    rows = np.arange(len(i))
    xi, yi = x[:, 0], y[:, 0]
    cross = d[i, 0] * (yi - a[i, 1]) - d[i, 1] * (xi - a[i, 0])
    lateral = np.copysign(np.sqrt(dist2[rows, i]), cross)
    return s[i] + t[rows, i] * np.sqrt(len2[i]), lateral


def point_at(poly: FloatArray, s: FloatArray, at: float) -> tuple[float, float, float]:
    """(x, y, heading) of the polyline at arc length `at` (clamped to its ends)."""
    at = min(max(at, 0.0), float(s[-1]))
    i = int(np.clip(np.searchsorted(s, at, side="right") - 1, 0, len(poly) - 2))
    seg = max(float(s[i + 1] - s[i]), 1e-9)
    t = (at - float(s[i])) / seg
    dx, dy = poly[i + 1] - poly[i]
    return float(poly[i, 0] + t * dx), float(poly[i, 1] + t * dy), math.atan2(float(dy), float(dx))


def to_ego(x: float, y: float, ego_x: float, ego_y: float, ego_yaw: float) -> tuple[float, float]:
    """A map-frame point in the ego frame (x forward, y left)."""
    dx, dy = x - ego_x, y - ego_y
    c, s = math.cos(ego_yaw), math.sin(ego_yaw)
    return c * dx + s * dy, -s * dx + c * dy
