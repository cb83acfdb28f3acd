"""Tiny builders of decoded messages (rosbags typestore objects) for the feature tests."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from roadloop_core.typesys import typestore_for

STORE = typestore_for("jazzy")
T = STORE.types


def header(ns: int, frame: str = "map") -> Any:
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=ns // 10**9, nanosec=ns % 10**9), frame_id=frame
    )


def vec(x: float = 0.0, y: float = 0.0, z: float = 0.0) -> Any:
    return T["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)


def pose(x: float, y: float, yaw: float) -> Any:
    return T["geometry_msgs/msg/Pose"](
        position=T["geometry_msgs/msg/Point"](x=x, y=y, z=0.0),
        orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2)),
    )


def odom(ns: int, x: float, y: float = 0.0, yaw: float = 0.0, v: float = 0.0, w: float = 0.0) -> Any:
    z36 = np.zeros(36)
    return T["nav_msgs/msg/Odometry"](
        header=header(ns),
        child_frame_id="base_link",
        pose=T["geometry_msgs/msg/PoseWithCovariance"](pose=pose(x, y, yaw), covariance=z36),
        twist=T["geometry_msgs/msg/TwistWithCovariance"](
            twist=T["geometry_msgs/msg/Twist"](linear=vec(v), angular=vec(0, 0, w)), covariance=z36
        ),
    )


def imu(ns: int, w: float = 0.0, ax: float = 0.0, ay: float = 0.0) -> Any:
    z9 = np.zeros(9)
    return T["sensor_msgs/msg/Imu"](
        header=header(ns, "base_link"),
        orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
        orientation_covariance=z9,
        angular_velocity=vec(0, 0, w),
        angular_velocity_covariance=z9,
        linear_acceleration=vec(ax, ay, 9.81),
        linear_acceleration_covariance=z9,
    )


def path(ns: int, points: list[tuple[float, float]]) -> Any:
    return T["nav_msgs/msg/Path"](
        header=header(ns),
        poses=[T["geometry_msgs/msg/PoseStamped"](header=header(ns), pose=pose(x, y, 0.0)) for x, y in points],
    )


def image(ns: int, array: np.ndarray, encoding: str = "rgb8", pad: int = 0) -> Any:
    h, w = array.shape[:2]
    ch = 1 if array.ndim == 2 else array.shape[2]
    rows = array.reshape(h, w * ch)
    if pad:
        rows = np.concatenate([rows, np.zeros((h, pad), np.uint8)], axis=1)
    return T["sensor_msgs/msg/Image"](
        header=header(ns, "camera"),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=0,
        step=w * ch + pad,
        data=rows.reshape(-1).copy(),
    )
