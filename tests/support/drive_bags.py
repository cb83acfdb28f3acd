"""Synthetic drive bags: a car on a smooth curved road, recorded on the registry's topics.

For tests and benchmarks of the data pipeline and the trainer without a simulator: camera (a
pose-dependent pattern), IMU and odometry at their rates, the route (the road ahead,
latched, republished at 1 Hz) and the driver's Ackermann command, written as an
mcap rosbag2 bag with `roadloop_core.bag.BagWriter`, so they go through the real dataset
builder. The motion is exact, so tests can check features and labels against ground truth.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from roadloop_core.bag import BagWriter
from roadloop_core.config import config_dir
from roadloop_core.registry import TopicRegistry, load_registry
from roadloop_core.typesys import typestore_for

__all__ = ["SynthDrive", "write_synth_bag"]

WHEELBASE_M = 2.7


@dataclass(frozen=True)
class SynthDrive:
    """Parameters of one synthetic drive; the trajectory is a deterministic function of them."""

    duration_s: float = 12.0
    seed: int = 0
    start_ns: int = 1_700_000_000_000_000_000
    camera: bool = True
    imu: bool = True
    image_width: int = 160
    image_height: int = 96
    camera_hz: float = 10.0
    odom_hz: float = 50.0
    imu_hz: float = 50.0
    command_hz: float = 10.0
    camera_latency_ns: int = 3_000_000  # camera messages are logged a little after their stamp

    def speed(self, t: np.ndarray) -> np.ndarray:
        return np.asarray(8.0 + 2.0 * np.sin(0.3 * t + self.seed), dtype=np.float64)

    def yaw_rate(self, t: np.ndarray) -> np.ndarray:
        return np.asarray(0.15 * np.sin(0.25 * t + 0.7 * self.seed), dtype=np.float64)


class _Track:
    """The integrated trajectory on a 1 ms grid, extended 40 s past the end for the route."""

    def __init__(self, drive: SynthDrive) -> None:
        self.dt = 1e-3
        self.t = np.arange(0.0, drive.duration_s + 40.0, self.dt)
        self.v = drive.speed(self.t)
        self.w = drive.yaw_rate(self.t)
        self.yaw = np.concatenate([[0.0], np.cumsum(self.w[:-1] * self.dt)]) + 0.1 * drive.seed
        self.x = np.concatenate([[0.0], np.cumsum(self.v[:-1] * np.cos(self.yaw[:-1]) * self.dt)])
        self.y = np.concatenate([[0.0], np.cumsum(self.v[:-1] * np.sin(self.yaw[:-1]) * self.dt)])
        self.a = np.gradient(self.v, self.dt)

    def at(self, t_s: float) -> tuple[float, float, float, float, float, float]:
        i = min(round(t_s / self.dt), len(self.t) - 1)
        return (
            float(self.x[i]),
            float(self.y[i]),
            float(self.yaw[i]),
            float(self.v[i]),
            float(self.w[i]),
            float(self.a[i]),
        )


def _stamp(store: Any, ns: int) -> Any:
    return store.types["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000)


def _header(store: Any, ns: int, frame: str) -> Any:
    return store.types["std_msgs/msg/Header"](stamp=_stamp(store, ns), frame_id=frame)


def _quat(store: Any, yaw: float) -> Any:
    return store.types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))


def _vec(store: Any, x: float, y: float, z: float) -> Any:
    return store.types["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)


def _pose(store: Any, x: float, y: float, yaw: float) -> Any:
    return store.types["geometry_msgs/msg/Pose"](
        position=store.types["geometry_msgs/msg/Point"](x=x, y=y, z=0.0), orientation=_quat(store, yaw)
    )


def _image(store: Any, ns: int, drive: SynthDrive, x: float, y: float, yaw: float, rng: np.random.Generator) -> Any:
    h, w = drive.image_height, drive.image_width
    cols = np.arange(w, dtype=np.float64)[None, :]
    rows = np.arange(h, dtype=np.float64)[:, None]
    horizon = h / 2 + 10 * math.sin(yaw)
    sky = rows < horizon
    stripes = (np.sin(cols / 7.0 + x * 0.8 + y * 0.3) > 0).astype(np.float64)
    img = np.empty((h, w, 3), dtype=np.uint8)
    img[..., 0] = np.where(sky, 90, 60 + 80 * stripes).astype(np.uint8)
    img[..., 1] = np.where(sky, 140, 60 + 40 * stripes).astype(np.uint8)
    img[..., 2] = np.where(sky, 220, 50 + (cols * 0.5 % 40)).astype(np.uint8)
    img = np.clip(img.astype(np.int16) + rng.integers(-6, 7, size=img.shape), 0, 255).astype(np.uint8)
    return store.types["sensor_msgs/msg/Image"](
        header=_header(store, ns, "camera_front"),
        height=h,
        width=w,
        encoding="rgb8",
        is_bigendian=0,
        step=w * 3,
        data=img.reshape(-1),
    )


def write_synth_bag(path: Path, drive: SynthDrive | None = None, registry: TopicRegistry | None = None) -> Path:
    """Write one synthetic drive as an mcap bag at `path` (must not exist) and return `path`."""
    drive = drive or SynthDrive()
    reg = registry or load_registry(config_dir() / "topics.yaml")  # test support, on its way out of src
    store = typestore_for(reg.typestore)
    track = _Track(drive)
    rng = np.random.default_rng(drive.seed)
    roles = ["odometry", "route", "command"] + (["camera"] if drive.camera else []) + (["imu"] if drive.imu else [])
    rates = {"odometry": drive.odom_hz, "imu": drive.imu_hz, "camera": drive.camera_hz, "command": drive.command_hz}
    rates["route"] = 1.0
    events: list[tuple[int, int, str, int]] = []  # (log ns, order, role, stamp ns)
    for order, role in enumerate(roles):
        n = int(drive.duration_s * rates[role])
        for k in range(n + 1):
            stamp = drive.start_ns + round(k * 1e9 / rates[role])
            log = stamp + (drive.camera_latency_ns if role == "camera" else 0)
            events.append((log, order, role, stamp))
    events.sort()
    cov = np.zeros(36, dtype=np.float64)
    cov9 = np.zeros(9, dtype=np.float64)
    with BagWriter(path, distro=reg.typestore, custom_data={"roadloop.synthetic": "true"}) as bag:
        for role in roles:
            bag.add_topic(reg[role].name, reg[role].type, reg[role].qos)
        for log, _, role, stamp in events:
            ts = (stamp - drive.start_ns) * 1e-9
            x, y, yaw, v, w, a = track.at(ts)
            if role == "odometry":
                msg = store.types["nav_msgs/msg/Odometry"](
                    header=_header(store, stamp, "map"),
                    child_frame_id="base_link",
                    pose=store.types["geometry_msgs/msg/PoseWithCovariance"](
                        pose=_pose(store, x, y, yaw), covariance=cov
                    ),
                    twist=store.types["geometry_msgs/msg/TwistWithCovariance"](
                        twist=store.types["geometry_msgs/msg/Twist"](
                            linear=_vec(store, v, 0.0, 0.0), angular=_vec(store, 0.0, 0.0, w)
                        ),
                        covariance=cov,
                    ),
                )
            elif role == "imu":
                msg = store.types["sensor_msgs/msg/Imu"](
                    header=_header(store, stamp, "base_link"),
                    orientation=_quat(store, yaw),
                    orientation_covariance=cov9,
                    angular_velocity=_vec(store, 0.0, 0.0, w),
                    angular_velocity_covariance=cov9,
                    linear_acceleration=_vec(store, a, v * w, 9.81),
                    linear_acceleration_covariance=cov9,
                )
            elif role == "camera":
                msg = _image(store, stamp, drive, x, y, yaw, rng)
            elif role == "command":
                steer = math.atan2(WHEELBASE_M * w, max(v, 0.1))
                msg = store.types["ackermann_msgs/msg/AckermannDriveStamped"](
                    header=_header(store, stamp, "base_link"),
                    drive=store.types["ackermann_msgs/msg/AckermannDrive"](
                        steering_angle=steer, steering_angle_velocity=0.0, speed=v, acceleration=a, jerk=0.0
                    ),
                )
            else:  # route: the road from 20 m behind to 200 m ahead, one pose per 2 m
                i0 = round(ts / track.dt)
                s = np.concatenate([[0.0], np.cumsum(np.hypot(np.diff(track.x), np.diff(track.y)))])
                lo = int(np.searchsorted(s, s[i0] - 20.0))
                hi = int(np.searchsorted(s, s[i0] + 200.0))
                idx = np.searchsorted(s, np.arange(s[lo], s[min(hi, len(s) - 1)], 2.0))
                poses = [
                    store.types["geometry_msgs/msg/PoseStamped"](
                        header=_header(store, stamp, "map"),
                        pose=_pose(store, float(track.x[i]), float(track.y[i]), float(track.yaw[i])),
                    )
                    for i in idx
                ]
                msg = store.types["nav_msgs/msg/Path"](header=_header(store, stamp, "map"), poses=poses)
            bag.write_msg(reg[role].name, log, msg)
    return path
