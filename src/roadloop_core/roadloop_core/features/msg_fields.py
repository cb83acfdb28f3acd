"""Reading the fields features need from decoded ROS messages (rosbags or rclpy objects alike).

The frame conventions an observation spec configures are applied here, once, for the builder
and the vehicle alike: the IMU's axes (`imu_frame`) and acceleration unit (`imu_accel_unit`), and
the odometry's heading offset (`odometry_yaw_offset_deg`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from roadloop_core.contract.observation import STANDARD_GRAVITY
from roadloop_core.features.geometry import OdomSample, wrap_angle, yaw_of

__all__ = ["ImuConvention", "ImuRef", "ImuSample", "imu_sample", "odom_sample", "route_points"]


def odom_sample(msg: Any, stamp_ns: int, yaw_offset_rad: float = 0.0) -> OdomSample:
    p = msg.pose.pose
    q = p.orientation
    yaw = yaw_of(float(q.x), float(q.y), float(q.z), float(q.w))
    return OdomSample(
        stamp_ns=stamp_ns,
        x=float(p.position.x),
        y=float(p.position.y),
        yaw=wrap_angle(yaw + yaw_offset_rad) if yaw_offset_rad else yaw,
        speed=float(msg.twist.twist.linear.x),
        yaw_rate=float(msg.twist.twist.angular.z),
    )


class OdomRef:
    """An odometry message known by its stamp, reduced to an OdomSample only when a frame needs it.

    Frames interpolate between two of ~5 odometry messages per frame, so most are never
    read; with a lazily decoding message (the dataset builder's) they are never decoded.
    """

    __slots__ = ("_msg", "_sample", "_yaw_offset", "stamp_ns")

    def __init__(self, stamp_ns: int, msg: Any, yaw_offset_rad: float = 0.0) -> None:
        self.stamp_ns = stamp_ns
        self._msg = msg
        self._yaw_offset = yaw_offset_rad
        self._sample: OdomSample | None = None

    def sample(self) -> OdomSample:
        if self._sample is None:
            self._sample = odom_sample(self._msg, self.stamp_ns, self._yaw_offset)
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


class ImuConvention:
    """Signs and scale that turn an IMU's readings into REP-103 body axes (x forward, y left, z up) in SI.

    frd (x forward, y right, z down) flips y and z: the yaw rate about z and the lateral acceleration
    change sign; accelerations logged in g are multiplied by standard gravity.
    """

    __slots__ = ("accel", "yaw")

    def __init__(self, frame: str = "flu", accel_unit: str = "mps2") -> None:
        flip = -1.0 if frame == "frd" else 1.0
        scale = STANDARD_GRAVITY if accel_unit == "g" else 1.0
        self.yaw = flip  # about z
        self.accel = (scale, flip * scale)  # x, y

    @property
    def identity(self) -> bool:
        return self.yaw == 1.0 and self.accel == (1.0, 1.0)


_IDENTITY = ImuConvention()


def imu_sample(msg: Any, stamp_ns: int, convention: ImuConvention = _IDENTITY) -> ImuSample:
    c = convention
    return ImuSample(
        stamp_ns,
        c.yaw * float(msg.angular_velocity.z),
        c.accel[0] * float(msg.linear_acceleration.x),
        c.accel[1] * float(msg.linear_acceleration.y),
    )


class ImuRef:
    """An IMU message known by its stamp, reduced to an ImuSample (once) when a frame reads it."""

    __slots__ = ("_convention", "_msg", "_sample", "stamp_ns")

    def __init__(self, stamp_ns: int, msg: Any, convention: ImuConvention = _IDENTITY) -> None:
        self.stamp_ns = stamp_ns
        self._msg = msg
        self._convention = convention
        self._sample: ImuSample | None = None

    def sample(self) -> ImuSample:
        if self._sample is None:
            self._sample = imu_sample(self._msg, self.stamp_ns, self._convention)
            self._msg = None
        return self._sample


def route_points(msg: Any) -> np.ndarray:
    """The (M, 2) map-frame x, y of a nav_msgs/Path."""
    return np.array([(float(p.pose.position.x), float(p.pose.position.y)) for p in msg.poses], dtype=np.float64)
