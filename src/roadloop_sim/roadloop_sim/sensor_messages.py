"""Builds the registry's ROS 2 messages (rosbags typestore objects) from simulator state.

Every simulator backend uses this one factory, so highway-env and CARLA publish identical
message layouts: frames `map` (ENU) / `base_link` / `imu_link` / `gnss_link` / `camera_front`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from roadloop_core.stamps import header
from roadloop_core.typesys import typestore_for
from roadloop_sim.geometry import yaw_to_quaternion
from roadloop_sim.scenarios import GeodeticOrigin

__all__ = ["EARTH_RADIUS_M", "MessageFactory", "enu_to_geodetic", "geodetic_to_enu"]

EARTH_RADIUS_M = 6_378_137.0
GRAVITY = 9.80665


def enu_to_geodetic(east: float, north: float, up: float, origin: GeodeticOrigin) -> tuple[float, float, float]:
    """Local ENU metres -> (lat, lon, alt) around `origin` (equirectangular: exact to mm over a few km)."""
    lat = origin.latitude + math.degrees(north / EARTH_RADIUS_M)
    lon = origin.longitude + math.degrees(east / (EARTH_RADIUS_M * math.cos(math.radians(origin.latitude))))
    return lat, lon, origin.altitude + up


def geodetic_to_enu(lat: float, lon: float, alt: float, origin: GeodeticOrigin) -> tuple[float, float, float]:
    """Inverse of `enu_to_geodetic`."""
    north = math.radians(lat - origin.latitude) * EARTH_RADIUS_M
    east = math.radians(lon - origin.longitude) * EARTH_RADIUS_M * math.cos(math.radians(origin.latitude))
    return east, north, alt - origin.altitude


class MessageFactory:
    """Message constructors for one typestore distro."""

    def __init__(self, distro: str = "jazzy") -> None:
        self.store = typestore_for(distro)
        t = self.store.types
        self._Image = t["sensor_msgs/msg/Image"]
        self._Imu = t["sensor_msgs/msg/Imu"]
        self._NavSatFix = t["sensor_msgs/msg/NavSatFix"]
        self._NavSatStatus = t["sensor_msgs/msg/NavSatStatus"]
        self._Odometry = t["nav_msgs/msg/Odometry"]
        self._Path = t["nav_msgs/msg/Path"]
        self._PoseStamped = t["geometry_msgs/msg/PoseStamped"]
        self._Pose = t["geometry_msgs/msg/Pose"]
        self._PoseCov = t["geometry_msgs/msg/PoseWithCovariance"]
        self._Twist = t["geometry_msgs/msg/Twist"]
        self._TwistCov = t["geometry_msgs/msg/TwistWithCovariance"]
        self._Point = t["geometry_msgs/msg/Point"]
        self._Quat = t["geometry_msgs/msg/Quaternion"]
        self._Vec3 = t["geometry_msgs/msg/Vector3"]
        self._DiagArray = t["diagnostic_msgs/msg/DiagnosticArray"]
        self._DiagStatus = t["diagnostic_msgs/msg/DiagnosticStatus"]
        self._KeyValue = t["diagnostic_msgs/msg/KeyValue"]
        self._Drive = t["ackermann_msgs/msg/AckermannDrive"]
        self._DriveStamped = t["ackermann_msgs/msg/AckermannDriveStamped"]

    def header(self, stamp_ns: int, frame_id: str) -> Any:
        return header(self.store, stamp_ns, frame_id)

    def _quat(self, yaw: float) -> Any:
        x, y, z, w = yaw_to_quaternion(yaw)
        return self._Quat(x=x, y=y, z=z, w=w)

    def image(self, rgb: npt.NDArray[np.uint8], stamp_ns: int, frame_id: str = "camera_front") -> Any:
        h, w = rgb.shape[:2]
        data = np.ascontiguousarray(rgb, dtype=np.uint8).reshape(-1)
        return self._Image(
            header=self.header(stamp_ns, frame_id),
            height=h,
            width=w,
            encoding="rgb8",
            is_bigendian=0,
            step=3 * w,
            data=data,
        )

    def imu(self, stamp_ns: int, yaw: float, accel_lon: float, accel_lat: float, yaw_rate: float) -> Any:
        """IMU in `imu_link` (= base_link axes): specific force, so a car at rest reads +g on z."""
        cov = np.zeros(9)
        return self._Imu(
            header=self.header(stamp_ns, "imu_link"),
            orientation=self._quat(yaw),
            orientation_covariance=cov.copy(),
            angular_velocity=self._Vec3(x=0.0, y=0.0, z=yaw_rate),
            angular_velocity_covariance=cov.copy(),
            linear_acceleration=self._Vec3(x=accel_lon, y=accel_lat, z=GRAVITY),
            linear_acceleration_covariance=cov.copy(),
        )

    def odometry(
        self, stamp_ns: int, x: float, y: float, yaw: float, v_lon: float, v_lat: float, yaw_rate: float
    ) -> Any:
        """Pose in `map`, twist in `base_link` (REP-105)."""
        pose = self._Pose(position=self._Point(x=x, y=y, z=0.0), orientation=self._quat(yaw))
        twist = self._Twist(linear=self._Vec3(x=v_lon, y=v_lat, z=0.0), angular=self._Vec3(x=0.0, y=0.0, z=yaw_rate))
        return self._Odometry(
            header=self.header(stamp_ns, "map"),
            child_frame_id="base_link",
            pose=self._PoseCov(pose=pose, covariance=np.zeros(36)),
            twist=self._TwistCov(twist=twist, covariance=np.zeros(36)),
        )

    def navsatfix(self, stamp_ns: int, x: float, y: float, origin: GeodeticOrigin, std_m: float = 0.02) -> Any:
        """A fix at map position (x, y) (ENU metres around `origin`)."""
        lat, lon, alt = enu_to_geodetic(x, y, 0.0, origin)
        return self.fix(stamp_ns, lat, lon, alt, std_m)

    def fix(self, stamp_ns: int, lat: float, lon: float, alt: float, std_m: float = 0.02) -> Any:
        cov = np.zeros(9)
        cov[0] = cov[4] = cov[8] = std_m * std_m
        return self._NavSatFix(
            header=self.header(stamp_ns, "gnss_link"),
            status=self._NavSatStatus(status=0, service=1),  # STATUS_FIX, SERVICE_GPS
            latitude=lat,
            longitude=lon,
            altitude=alt,
            position_covariance=cov,
            position_covariance_type=2,  # COVARIANCE_TYPE_DIAGONAL_KNOWN
        )

    def path(self, stamp_ns: int, points: npt.NDArray[np.float64], frame_id: str = "map") -> Any:
        """nav_msgs/Path through (N, 2) points, each pose oriented along the path."""
        hdr = self.header(stamp_ns, frame_id)
        poses = []
        n = len(points)
        for i in range(n):
            j = min(i + 1, n - 1)
            k = j - 1 if j == i else i
            yaw = math.atan2(float(points[j, 1] - points[k, 1]), float(points[j, 0] - points[k, 0])) if n > 1 else 0.0
            pose = self._Pose(
                position=self._Point(x=float(points[i, 0]), y=float(points[i, 1]), z=0.0), orientation=self._quat(yaw)
            )
            poses.append(self._PoseStamped(header=hdr, pose=pose))
        return self._Path(header=hdr, poses=poses)

    def diagnostics(self, stamp_ns: int, name: str, level: int, message: str, values: Sequence[tuple[str, str]]) -> Any:
        status = self._DiagStatus(
            level=level,
            name=name,
            message=message,
            hardware_id="roadloop_sim",
            values=[self._KeyValue(key=k, value=v) for k, v in values],
        )
        return self._DiagArray(header=self.header(stamp_ns, ""), status=[status])

    def command(self, stamp_ns: int, steering_angle: float, speed: float, acceleration: float = 0.0) -> Any:
        drive = self._Drive(
            steering_angle=float(steering_angle),
            steering_angle_velocity=0.0,
            speed=float(speed),
            acceleration=float(acceleration),
            jerk=0.0,
        )
        return self._DriveStamped(header=self.header(stamp_ns, "base_link"), drive=drive)
