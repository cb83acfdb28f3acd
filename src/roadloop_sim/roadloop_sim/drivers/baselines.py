"""Baseline drivers that see only the messages (no privileged state): `constant` and `lanekeep`."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from roadloop_core.registry import TopicRegistry
from roadloop_sim.geometry import arc_lengths, point_at, project, to_ego
from roadloop_sim.protocol import Observation
from roadloop_sim.sensor_messages import MessageFactory

__all__ = ["ConstantDriver", "LaneKeepDriver"]


def _yaw(q: Any) -> float:
    return math.atan2(2.0 * (q.w * q.z + q.x * q.y), 1.0 - 2.0 * (q.y * q.y + q.z * q.z))


class ConstantDriver:
    """Hold the speed the episode started with, steer straight."""

    name = "constant"
    wants_raw = False

    def __init__(self, registry: TopicRegistry) -> None:
        self.registry = registry
        self.factory = MessageFactory(self.registry.typestore)
        self._speed: float | None = None

    def reset(self, scenario: str, seed: int) -> None:
        self._speed = None

    def act(self, obs: Observation) -> Any:
        odom = obs.messages.get(self.registry["odometry"].name)
        if self._speed is None:
            self._speed = float(odom.twist.twist.linear.x) if odom is not None else 0.0
        return self.factory.command(obs.time_ns, 0.0, self._speed)


class LaneKeepDriver(ConstantDriver):
    """Pure pursuit on /planning/route at the initial speed: no car following, no lane changes."""

    name = "lanekeep"
    wheelbase = 5.0
    max_steer = 0.6

    def act(self, obs: Observation) -> Any:
        odom = obs.messages.get(self.registry["odometry"].name)
        route = obs.messages.get(self.registry["route"].name)
        if odom is None:
            return self.factory.command(obs.time_ns, 0.0, 0.0)
        v = float(odom.twist.twist.linear.x)
        if self._speed is None:
            self._speed = v
        steer = 0.0
        if route is not None and len(route.poses) >= 2:
            pose = odom.pose.pose
            x, y, yaw = float(pose.position.x), float(pose.position.y), _yaw(pose.orientation)
            poly = np.array([[p.pose.position.x, p.pose.position.y] for p in route.poses], dtype=np.float64)
            s = arc_lengths(poly)
            s_ego, _ = project(poly, s, x, y)
            tx, ty, _ = point_at(poly, s, s_ego + max(7.0, 0.6 * v))
            ex, ey = to_ego(tx, ty, x, y, yaw)
            steer = math.atan(self.wheelbase * 2.0 * ey / max(ex * ex + ey * ey, 1e-6))
            steer = min(max(steer, -self.max_steer), self.max_steer)
        return self.factory.command(obs.time_ns, steer, self._speed)
