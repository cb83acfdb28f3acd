"""Bags recorded the way real cars record them: highway drives on a car's own topics.

Unlike `drive_bags` (the registry's topics, exact motion, a route and a camera), these carry what
a production car logs and nothing more: no camera and no route; an IMU at 100 Hz (noisy, biased,
optionally mounted z-down, with one 6.2 m/s² spike), GNSS at 10 Hz, odometry at 20 Hz in ENU whose
heading has a small bias, and the vehicle's status at 50 Hz (wheel speed and the steering-WHEEL
angle, as AckermannDriveStamped). The motion is a highway drive: 25-33 m/s with speed changes,
gentle curves entered through clothoids, lane changes and lane-keeping wander, integrated on a
1 ms grid, so the labels the builder computes are checked against a real trajectory, and constant
velocity is a real baseline (it misses the curves and the speed changes).

    write_real_bag(path, RealDrive(duration_s=300, seed=1), registry)   # config/real-log/topics.yaml
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from roadloop_core.bag import BagWriter
from roadloop_core.registry import TopicRegistry
from roadloop_core.typesys import typestore_for

__all__ = [
    "REAL_LOG_CONFIG",
    "UNCHECKED",
    "UNCHECKED_LABELS",
    "RealDrive",
    "RealTrack",
    "real_log_config",
    "write_real_bag",
]

REAL_LOG_CONFIG = Path(__file__).resolve().parents[2] / "config" / "real-log"
G = 9.80665
EARTH_RADIUS_M = 6_378_137.0


@dataclass(frozen=True)
class RealDrive:
    """One highway drive; the trajectory and every sensor's noise are a deterministic function of these."""

    duration_s: float = 300.0
    seed: int = 0
    start_ns: int = 1_717_000_000_000_000_000
    imu_hz: float = 100.0
    odom_hz: float = 20.0
    gnss_hz: float = 10.0
    status_hz: float = 50.0
    imu_z_down: bool = True  # x forward, y right, z down (a common INS mounting)
    imu_spike: tuple[float, float] | None = (60.0, 6.2)  # (time s, m/s² added to linear_acceleration.x once)
    heading_bias_deg: float = 0.8  # the odometry orientation's yaw minus the true heading
    steering_ratio: float = 15.3  # the status topic logs the steering-wheel angle
    wheelbase_m: float = 2.7
    speed_range: tuple[float, float] = (25.0, 33.0)
    lane_width_m: float = 3.5
    origin_lat_lon: tuple[float, float] = (48.1351, 11.5820)


class RealTrack:
    """The drive on a 1 ms grid: ENU position, heading, speed, yaw rate, longitudinal acceleration."""

    def __init__(self, drive: RealDrive) -> None:
        rng = np.random.default_rng(drive.seed)
        self.dt = 1e-3
        n = int(drive.duration_s / self.dt) + 1
        self.t = np.arange(n) * self.dt
        v = self._speed(drive, rng, n)
        s = np.concatenate([[0.0], np.cumsum(v[:-1] * self.dt)])
        road_heading = self._road_heading(s, rng) + rng.uniform(-math.pi, math.pi)
        offset = self._lateral_offset(drive, rng)
        # the centerline by arc length, then the car `offset` to the left of it
        cx = np.concatenate([[0.0], np.cumsum(np.cos(road_heading[:-1]) * np.diff(s))])
        cy = np.concatenate([[0.0], np.cumsum(np.sin(road_heading[:-1]) * np.diff(s))])
        self.x = cx - np.sin(road_heading) * offset
        self.y = cy + np.cos(road_heading) * offset
        dx, dy = np.gradient(self.x, self.dt), np.gradient(self.y, self.dt)
        self.yaw = np.unwrap(np.arctan2(dy, dx))
        self.speed = np.hypot(dx, dy)
        self.yaw_rate = np.gradient(self.yaw, self.dt)
        self.accel = np.gradient(self.speed, self.dt)

    def _speed(self, drive: RealDrive, rng: np.random.Generator, n: int) -> np.ndarray:
        """Cruise at a target speed that changes every 15-40 s; acceleration follows a bounded command
        through a 1.5 s lag (so jerk stays finite), plus a slow drift of the driver's foot."""
        lo, hi = drive.speed_range
        v = np.empty(n)
        v[0] = rng.uniform(lo + 2, hi - 2)
        target, next_change, a = v[0], 0.0, 0.0
        drift = np.cumsum(rng.normal(0.0, 0.002, n))
        drift -= np.linspace(0.0, drift[-1], n)
        for i in range(1, n):
            t = i * self.dt
            if t >= next_change:
                target = rng.uniform(lo, hi)
                next_change = t + rng.uniform(15.0, 40.0)
            cmd = float(np.clip(0.3 * (target - v[i - 1]), -1.2, 0.9))
            a += (cmd - a) * self.dt / 1.5
            v[i] = v[i - 1] + (a + 0.05 * (drift[i] - drift[i - 1]) / self.dt) * self.dt
        return v

    @staticmethod
    def _road_heading(s: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Straights and arcs (radius 600-2000 m, either way), entered and left through 150 m clothoids."""
        total = float(s[-1]) + 1.0
        knots, kappa = [0.0], [0.0]
        pos = 0.0
        while pos < total:
            straight = rng.uniform(200.0, 900.0)
            arc = rng.uniform(300.0, 900.0)
            k = rng.choice([-1.0, 1.0]) / rng.uniform(600.0, 2000.0)
            knots += [pos + straight, pos + straight + 150.0, pos + straight + 150.0 + arc,
                      pos + straight + 300.0 + arc]  # fmt: skip
            kappa += [0.0, k, k, 0.0]
            pos += straight + 300.0 + arc
        curvature = np.interp(s, knots, kappa)
        return np.concatenate([[0.0], np.cumsum(curvature[:-1] * np.diff(s))])

    def _lateral_offset(self, drive: RealDrive, rng: np.random.Generator) -> np.ndarray:
        """Lane changes (quintic, 5-7 s) every 20-50 s between three lanes, plus lane-keeping wander."""
        t = self.t
        offset = np.zeros_like(t)
        lane, when = 0, rng.uniform(10.0, 30.0)
        while when < t[-1]:
            step = rng.choice([-1, 1]) if lane == 0 else -lane
            length = rng.uniform(5.0, 7.0)
            tau = np.clip((t - when) / length, 0.0, 1.0)
            offset += step * drive.lane_width_m * (10 * tau**3 - 15 * tau**4 + 6 * tau**5)
            lane += step
            when += length + rng.uniform(20.0, 50.0)
        phase = rng.uniform(0, 2 * math.pi, 2)
        return (
            offset + 0.15 * np.sin(2 * math.pi * t / 11.0 + phase[0]) + 0.08 * np.sin(2 * math.pi * t / 4.3 + phase[1])
        )

    def index(self, t_s: float) -> int:
        return min(max(round(t_s / self.dt), 0), len(self.t) - 1)


def _header(store: Any, ns: int, frame: str) -> Any:
    T = store.types
    return T["std_msgs/msg/Header"](
        stamp=T["builtin_interfaces/msg/Time"](sec=ns // 1_000_000_000, nanosec=ns % 1_000_000_000), frame_id=frame
    )


def _vec(store: Any, x: float, y: float, z: float) -> Any:
    return store.types["geometry_msgs/msg/Vector3"](x=x, y=y, z=z)


def _quat(store: Any, yaw: float) -> Any:
    return store.types["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=math.sin(yaw / 2), w=math.cos(yaw / 2))


def write_real_bag(path: Path, drive: RealDrive, registry: TopicRegistry) -> Path:
    """Write the drive as one mcap bag at `path` (must not exist) on the registry's imu, gnss, odometry and
    vehicle_status topics (config/real-log/topics.yaml) and return `path`."""
    store = typestore_for(registry.typestore)
    T = store.types
    track = RealTrack(drive)
    rng = np.random.default_rng(drive.seed + 1000)
    rates = {"imu": drive.imu_hz, "gnss": drive.gnss_hz, "odometry": drive.odom_hz, "vehicle_status": drive.status_hz}
    latency_ns = {"imu": 1_000_000, "gnss": 40_000_000, "odometry": 8_000_000, "vehicle_status": 3_000_000}
    events: list[tuple[int, int, str, int]] = []  # (receive ns, order, role, stamp ns)
    for order, (role, hz) in enumerate(rates.items()):
        for k in range(int(drive.duration_s * hz) + 1):
            stamp = drive.start_ns + round(k * 1e9 / hz)
            events.append((stamp + latency_ns[role], order, role, stamp))
    events.sort()
    flip = -1.0 if drive.imu_z_down else 1.0
    gyro_bias = rng.normal(0.0, 0.001)
    bias = math.radians(drive.heading_bias_deg)
    spike_at = (
        None
        if drive.imu_spike is None
        else drive.start_ns + round(drive.imu_spike[0] * drive.imu_hz) * round(1e9 / drive.imu_hz)
    )
    cov9, cov36 = np.zeros(9), np.zeros(36)
    lat0, lon0 = map(math.radians, drive.origin_lat_lon)
    with BagWriter(path, distro=registry.typestore, custom_data={"roadloop.synthetic": "real-like"}) as bag:
        for role in rates:
            bag.add_topic(registry[role].name, registry[role].type, registry[role].qos)
        for receive, _, role, stamp in events:
            i = track.index((stamp - drive.start_ns) / 1e9)
            x, y, yaw = float(track.x[i]), float(track.y[i]), float(track.yaw[i])
            v, w, a = float(track.speed[i]), float(track.yaw_rate[i]), float(track.accel[i])
            if role == "imu":
                ax = a + rng.normal(0.0, 0.25) + (drive.imu_spike[1] if stamp == spike_at and drive.imu_spike else 0.0)
                ay = v * w + rng.normal(0.0, 0.25)
                msg = T["sensor_msgs/msg/Imu"](
                    header=_header(store, stamp, "imu_link"),
                    orientation=_quat(store, 0.0),
                    orientation_covariance=np.array([-1.0, *[0.0] * 8]),  # no orientation estimate (REP-145)
                    angular_velocity=_vec(
                        store,
                        rng.normal(0, 0.003),
                        rng.normal(0, 0.003),
                        flip * (w + gyro_bias + rng.normal(0.0, 0.004)),
                    ),
                    angular_velocity_covariance=cov9,
                    linear_acceleration=_vec(store, ax, flip * ay, flip * (G + rng.normal(0.0, 0.3))),
                    linear_acceleration_covariance=cov9,
                )
            elif role == "odometry":
                msg = T["nav_msgs/msg/Odometry"](
                    header=_header(store, stamp, "map"),
                    child_frame_id="base_link",
                    pose=T["geometry_msgs/msg/PoseWithCovariance"](
                        pose=T["geometry_msgs/msg/Pose"](
                            position=T["geometry_msgs/msg/Point"](
                                x=x + rng.normal(0.0, 0.01), y=y + rng.normal(0.0, 0.01), z=0.0
                            ),
                            orientation=_quat(store, yaw + bias + rng.normal(0.0, 0.0008)),
                        ),
                        covariance=cov36,
                    ),
                    twist=T["geometry_msgs/msg/TwistWithCovariance"](
                        twist=T["geometry_msgs/msg/Twist"](
                            linear=_vec(store, v + rng.normal(0.0, 0.03), 0.0, 0.0),
                            angular=_vec(store, 0.0, 0.0, w + rng.normal(0.0, 0.002)),
                        ),
                        covariance=cov36,
                    ),
                )
            elif role == "vehicle_status":
                road_wheel = math.atan(drive.wheelbase_m * w / max(v, 0.5))
                msg = T["ackermann_msgs/msg/AckermannDriveStamped"](
                    header=_header(store, stamp, "base_link"),
                    drive=T["ackermann_msgs/msg/AckermannDrive"](
                        steering_angle=drive.steering_ratio * road_wheel + rng.normal(0.0, 0.003),
                        steering_angle_velocity=0.0,
                        speed=v * 1.01 + rng.normal(0.0, 0.04),  # wheel speed: 1 % tyre scale
                        acceleration=0.0,
                        jerk=0.0,
                    ),
                )
            else:  # gnss: WGS84 from the ENU position (local tangent plane), 0.5 m noise
                e, nn = x + rng.normal(0.0, 0.5), y + rng.normal(0.0, 0.5)
                msg = T["sensor_msgs/msg/NavSatFix"](
                    header=_header(store, stamp, "gnss_link"),
                    status=T["sensor_msgs/msg/NavSatStatus"](status=0, service=1),
                    latitude=math.degrees(lat0 + nn / EARTH_RADIUS_M),
                    longitude=math.degrees(lon0 + e / (EARTH_RADIUS_M * math.cos(lat0))),
                    altitude=520.0,
                    position_covariance=np.array([0.25, 0, 0, 0, 0.25, 0, 0, 0, 1.0]),
                    position_covariance_type=2,
                )
            bag.write_msg(registry[role].name, receive, msg)
    return path


def real_log_config(path: Path, observation: dict[str, Any] | None = None, build: dict[str, Any] | None = None,
                    labels: dict[str, Any] | None = None) -> Path:  # fmt: skip
    """config/real-log/dataset.yaml with some `observation:`, `build:` or `build.labels:` fields replaced, at `path`."""
    import yaml

    doc = yaml.safe_load((REAL_LOG_CONFIG / "dataset.yaml").read_text())
    doc["observation"].update(observation or {})
    doc["build"].update(build or {})
    doc["build"]["labels"].update(labels or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


# what a user writes first for this car, before `roadloop data check` told them its conventions
UNCHECKED = {"imu_frame": "flu", "odometry_yaw_offset_deg": 0.0}
UNCHECKED_LABELS = {"steering_ratio": 1.0}
