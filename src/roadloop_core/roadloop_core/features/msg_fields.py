"""Reading the fields features need from decoded ROS messages (rosbags or rclpy objects alike)."""

from __future__ import annotations

from typing import Any

import numpy as np

from roadloop_core.features.geometry import OdomSample, yaw_of

__all__ = ["ImuSample", "imu_sample", "odom_sample", "route_points"]


def odom_sample(msg: Any, stamp_ns: int) -> OdomSample:
    p = msg.pose.pose
    q = p.orientation
    return OdomSample(
        stamp_ns=stamp_ns,
        x=float(p.position.x),
        y=float(p.position.y),
        yaw=yaw_of(float(q.x), float(q.y), float(q.z), float(q.w)),
        speed=float(msg.twist.twist.linear.x),
        yaw_rate=float(msg.twist.twist.angular.z),
    )


class OdomRef:
    """An odometry message known by its stamp, reduced to an OdomSample only when a frame needs it.

    Frames interpolate between two of ~5 odometry messages per frame, so most are never
    read; with a lazily decoding message (the dataset builder's) they are never decoded.
    """

    __slots__ = ("_msg", "_sample", "stamp_ns")

    def __init__(self, stamp_ns: int, msg: Any) -> None:
        self.stamp_ns = stamp_ns
        self._msg = msg
        self._sample: OdomSample | None = None

    def sample(self) -> OdomSample:
        if self._sample is None:
            self._sample = odom_sample(self._msg, self.stamp_ns)
            self._msg = None
        return self._sample


class ImuSample:
    """Body-frame yaw rate and planar accelerations of one IMU message."""

    __slots__ = ("accel_x", "accel_y", "stamp_ns", "yaw_rate")

    def __init__(self, stamp_ns: int, yaw_rate: float, accel_x: float, accel_y: float) -> None:
        self.stamp_ns = stamp_ns
        self.yaw_rate = yaw_rate
        self.accel_x = accel_x
        self.accel_y = accel_y


def imu_sample(msg: Any, stamp_ns: int) -> ImuSample:
    return ImuSample(
        stamp_ns,
        float(msg.angular_velocity.z),
        float(msg.linear_acceleration.x),
        float(msg.linear_acceleration.y),
    )


def route_points(msg: Any) -> np.ndarray:
    """The (M, 2) map-frame x, y of a nav_msgs/Path."""
    return np.array([(float(p.pose.position.x), float(p.pose.position.y)) for p in msg.poses], dtype=np.float64)
