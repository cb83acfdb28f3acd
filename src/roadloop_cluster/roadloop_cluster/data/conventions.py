"""What a bag's numbers say about its conventions: pure functions from arrays to findings.

Each function looks at one thing a real log gets wrong (REP-103 axes, REP-105 frames, REP-145 IMU
units, the registry's rates, the clocks) and returns a `Finding` with what it measured and what to
change, or None when all is well. `roadloop data check` and `roadloop data build` call the same
functions on the same samples (`roadloop_cluster.data.probe`), so both say the same thing.

Severity: "error" -- the builder refuses the bag (the samples would be wrong); "warning" -- the
data is usable, something should still change (usually for the car: rates, gaps); "info" --
what could not be checked, and why.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import NDArray

__all__ = [
    "Finding",
    "accel_unit_finding",
    "clock_finding",
    "coverage_finding",
    "gap_finding",
    "heading_finding",
    "imu_yaw_finding",
    "label_speed_finding",
    "measured_rate_hz",
    "rate_finding",
    "steering_finding",
    "twist_finding",
    "twist_yaw_finding",
]

Floats = NDArray[np.float64]
SEVERITIES = ("error", "warning", "info")
_G = 9.80665
_MIN_SAMPLES = 20  # fewer usable samples than this: say it could not be checked


@dataclass(frozen=True)
class Finding:
    severity: str  # error | warning | info
    code: str  # what was checked: missing_topic, type, rate, gap, coverage, clock, imu_yaw, imu_accel, ...
    subject: str  # "/sensors/imu (imu)", "build.labels.command", ...
    message: str  # what was found, with the numbers
    fix: str = ""  # what to change

    def text(self) -> str:
        return f"{self.subject}: {self.message}" + (f" -> {self.fix}" if self.fix else "")

    def line(self) -> str:
        return f"{self.severity}: {self.text()}"


def _info(code: str, subject: str, message: str) -> Finding:
    return Finding("info", code, subject, message)


# -- rates, gaps, coverage, clocks ---------------------------------------------------------------


def measured_rate_hz(stamps_ns: NDArray[np.int64]) -> float | None:
    """The rate of a topic from its stamps: 1 / the median interval (robust to gaps and bursts)."""
    if len(stamps_ns) < 3:
        return None
    dt = np.diff(np.sort(stamps_ns)).astype(np.float64) / 1e9
    dt = dt[dt > 0]
    return None if len(dt) == 0 else float(1.0 / np.median(dt))


def rate_finding(
    subject: str, role: str, measured_hz: float | None, expected_hz: float, stale_factor: float, tolerance: float
) -> Finding | None:
    """The measured rate against topics.yaml's `rate_hz` (which sets when the car calls the topic stale)."""
    if measured_hz is None:
        return None
    fix = f"set topics.{role}.rate_hz: {measured_hz:.3g} in the topic registry"
    stale_after = stale_factor / expected_hz
    if 1.0 / measured_hz > stale_after:
        return Finding(
            "warning", "rate", subject,
            f"arrives at {measured_hz:.3g} Hz but the registry says {expected_hz:g} Hz, so the car would call it "
            f"stale between two messages (after stale_factor / rate_hz = {stale_after:.3g} s: fault stale:{role})",
            fix,
        )  # fmt: skip
    if abs(measured_hz / expected_hz - 1.0) > tolerance:
        return Finding(
            "warning", "rate", subject, f"arrives at {measured_hz:.3g} Hz, the registry says {expected_hz:g} Hz", fix
        )
    return None


def gap_finding(subject: str, role: str, stamps_ns: NDArray[np.int64], stale_after_s: float) -> Finding | None:
    """Silences longer than the topic's staleness limit (frames there are dropped; the car would fault)."""
    if len(stamps_ns) < 2:
        return None
    s = np.sort(stamps_ns)
    dt = np.diff(s) / 1e9
    gaps = np.flatnonzero(dt > stale_after_s)
    if len(gaps) == 0:
        return None
    worst = int(gaps[np.argmax(dt[gaps])])
    at = (s[worst] - s[0]) / 1e9
    return Finding(
        "warning", "gap", subject,
        f"{len(gaps)} silence(s) longer than {stale_after_s:.3g} s (longest {dt[worst]:.2f} s, {at:.1f} s in): "
        f"frames there are dropped, and the car would fault stale:{role}",
        "check the recording (a dropped sensor, a full disk, a paused recorder)",
    )  # fmt: skip


def coverage_finding(subject: str, first_ns: int, last_ns: int, start_ns: int, end_ns: int) -> Finding | None:
    """A topic that covers less than 90 % of the bag's span (late start, early stop)."""
    span = end_ns - start_ns
    if span <= 0:
        return None
    covered = (min(last_ns, end_ns) - max(first_ns, start_ns)) / span
    if covered >= 0.9:
        return None
    return Finding(
        "warning", "coverage", subject,
        f"covers {(first_ns - start_ns) / 1e9:.1f}-{(last_ns - start_ns) / 1e9:.1f} s of the bag's "
        f"{span / 1e9:.1f} s ({covered:.0%}): samples exist only where every observed topic does",
        "nothing to change if intended; otherwise check the sensor's start-up",
    )  # fmt: skip


def clock_finding(offsets_s: dict[str, float], max_skew_s: float) -> Finding | None:
    """Header stamps against receive times, per topic: observed topics on different clocks cannot be matched."""
    if len(offsets_s) < 2:
        return None
    lo = min(offsets_s, key=lambda k: offsets_s[k])
    hi = max(offsets_s, key=lambda k: offsets_s[k])
    if offsets_s[hi] - offsets_s[lo] <= max_skew_s:
        return None
    return Finding(
        "error", "clock", f"{lo} vs {hi}",
        f"header stamps are {offsets_s[lo]:+.3f} s and {offsets_s[hi]:+.3f} s off their receive times: the topics "
        f"are stamped on different clocks (apart by more than check.max_clock_skew_s {max_skew_s:g} s), and the "
        "synchronizer matches header stamps",
        "stamp every sensor on one clock (ROS time or a PTP-synchronised sensor clock) and record again",
    )  # fmt: skip


# -- frame conventions -----------------------------------------------------------------------------


def _corr(a: Floats, b: Floats) -> float:
    if np.std(a) == 0 or np.std(b) == 0:
        return 0.0
    return float(np.corrcoef(a, b)[0, 1])


def imu_yaw_finding(
    subject: str, imu_yaw_rate: Floats, odom_yaw_rate: Floats, imu_frame: str, min_correlation: float
) -> Finding | None:
    """IMU yaw rate (after the configured `imu_frame`) against the odometry's heading rate, sample by sample.

    REP-103: z up, so turning left is a positive yaw rate for both. Anti-correlated: the IMU's z points
    down; uncorrelated: not the right topic or axis; a gain near 57: degrees per second.
    """
    if len(imu_yaw_rate) < _MIN_SAMPLES or float(np.std(odom_yaw_rate)) < 0.005:
        return _info("imu_yaw", subject, "yaw rate not checked: the drive has too few turns")
    r = _corr(imu_yaw_rate, odom_yaw_rate)
    other = "frd" if imu_frame == "flu" else "flu"
    if r <= -min_correlation:
        return Finding(
            "error", "imu_yaw", subject,
            f"yaw rate is anti-correlated with the odometry's heading rate (r = {r:.2f}) with imu_frame {imu_frame}: "
            "the IMU's z axis points the other way (REP-103: x forward, y left, z up)",
            f"set observation.imu_frame: {other}",
        )  # fmt: skip
    if r < min_correlation:
        return Finding(
            "error", "imu_yaw", subject,
            f"yaw rate does not follow the odometry's heading rate (r = {r:.2f}, check.min_yaw_rate_correlation "
            f"{min_correlation:g}): not the vehicle's IMU, or another axis is the vertical one",
            "point the imu role at the vehicle's IMU in the topic registry, or set observation.imu: null "
            "(yaw rate and accelerations from odometry)",
        )  # fmt: skip
    gain = float(np.dot(imu_yaw_rate, odom_yaw_rate) / max(np.dot(odom_yaw_rate, odom_yaw_rate), 1e-12))
    if 45.0 < gain < 70.0:
        return Finding(
            "error", "imu_yaw", subject,
            f"yaw rate is {gain:.1f}x the odometry's: angular_velocity is in deg/s (sensor_msgs/Imu: rad/s)",
            "publish rad/s, or set observation.imu: null (yaw rate and accelerations from odometry)",
        )  # fmt: skip
    return None


def accel_unit_finding(
    subject: str, accel_z: Floats, accel_x: Floats, odom_accel: Floats, imu_frame: str, accel_unit: str
) -> Finding | None:
    """Gravity on the IMU's z axis (REP-145: m/s², z up reads about +9.8 at rest), else the x axis against
    the odometry's acceleration: accelerations in g, or a z axis pointing down."""
    if len(accel_z) < _MIN_SAMPLES:
        return _info("imu_accel", subject, "accelerations not checked: too few IMU samples")
    raw = float(np.mean(accel_z))
    flip = -1.0 if imu_frame == "frd" else 1.0
    scale = _G if accel_unit == "g" else 1.0
    up = flip * raw * scale  # what the features take for z (up), in m/s²
    if 0.6 < abs(raw) < 1.4 and accel_unit == "mps2":
        return Finding(
            "error", "imu_accel", subject,
            f"linear_acceleration.z averages {raw:.2f}: accelerations are in g (REP-145: m/s², about 9.8 at rest)",
            "set observation.imu_accel_unit: g",
        )  # fmt: skip
    if 6.0 < abs(raw) < 14.0 and accel_unit == "g":
        return Finding(
            "error", "imu_accel", subject,
            f"linear_acceleration.z averages {raw:.2f}: accelerations are already in m/s², not g",
            "set observation.imu_accel_unit: mps2",
        )  # fmt: skip
    if up < -0.5 * _G:
        other = "frd" if imu_frame == "flu" else "flu"
        return Finding(
            "error", "imu_accel", subject,
            f"linear_acceleration.z averages {raw:.2f} with imu_frame {imu_frame}: gravity points along -z, so the "
            "IMU's z axis points down (REP-103/REP-145: z up)",
            f"set observation.imu_frame: {other}",
        )  # fmt: skip
    if abs(up) < 0.5 * _G and len(odom_accel) >= _MIN_SAMPLES and float(np.std(odom_accel)) > 0.05:
        x = accel_x * scale
        gain = float(np.dot(x, odom_accel) / max(np.dot(odom_accel, odom_accel), 1e-12))
        if 0.06 < gain < 0.16:
            return Finding(
                "error", "imu_accel", subject,
                f"gravity is removed, and linear_acceleration.x is {gain:.3f}x the odometry's acceleration: in g",
                "set observation.imu_accel_unit: g",
            )  # fmt: skip
    return None


def _circular_mean_deg(angles_rad: Floats) -> tuple[float, float]:
    """(mean, circular standard deviation) of angles, in degrees."""
    c, s = float(np.mean(np.cos(angles_rad))), float(np.mean(np.sin(angles_rad)))
    r = min(1.0, math.hypot(c, s))
    spread = math.degrees(math.sqrt(-2.0 * math.log(r))) if r > 0 else 180.0
    return math.degrees(math.atan2(s, c)), spread


def heading_finding(
    subject: str,
    heading: Floats,
    travel_direction: Floats,
    travel_speed: Floats,
    offset_deg: float,
    tolerance_deg: float,
    report_deg: float,
    min_speed_mps: float,
) -> Finding | None:
    """The odometry's heading (orientation yaw plus the configured `odometry_yaw_offset_deg`) against the
    direction the positions move in. REP-105: the pose's x axis is the vehicle's forward direction, and
    the labels (waypoints in the ego frame) are only right if it is."""
    moving = travel_speed >= min_speed_mps
    if int(moving.sum()) < _MIN_SAMPLES:
        return _info("heading", subject, f"heading not checked: too few samples faster than {min_speed_mps:g} m/s")
    diff = np.angle(np.exp(1j * (heading[moving] + math.radians(offset_deg) - travel_direction[moving])))
    mean, spread = _circular_mean_deg(diff)
    suggested = f"set observation.odometry_yaw_offset_deg: {offset_deg - mean:.2f}"
    if spread > max(tolerance_deg, 10.0):
        return Finding(
            "error", "heading", subject,
            f"heading differs from the direction of travel by {mean:.1f}° ± {spread:.1f}°: the orientation is not "
            "the vehicle's heading in the odometry frame (an NED or compass heading? REP-105: ENU, x forward)",
            "publish the odometry in an ENU frame with x forward (REP-103/REP-105); the labels need it",
        )  # fmt: skip
    if abs(mean) > tolerance_deg:
        return Finding(
            "error", "heading", subject,
            f"heading is {mean:.1f}° (± {spread:.1f}°) off the direction of travel, beyond "
            f"check.heading_tolerance_deg {tolerance_deg:g}°: labels in the ego frame would be rotated by it",
            suggested,
        )  # fmt: skip
    if abs(mean) > report_deg:
        return Finding(
            "warning", "heading", subject,
            f"heading is {mean:.2f}° (± {spread:.1f}°) off the direction of travel: a small heading bias rotates "
            f"every label (at 90 m ahead, {90 * math.sin(math.radians(abs(mean))):.1f} m sideways)",
            suggested,
        )  # fmt: skip
    return None


def twist_finding(subject: str, twist_speed: Floats, travel_speed: Floats, min_speed_mps: float) -> Finding | None:
    """twist.linear.x against the speed the positions show. REP-105: the twist is in the child (body) frame,
    so linear.x is the forward speed; a world-frame velocity there is not."""
    moving = travel_speed >= min_speed_mps
    if int(moving.sum()) < _MIN_SAMPLES:
        return None
    ratio = twist_speed[moving] / travel_speed[moving]
    med = float(np.median(ratio))
    bad = float(np.mean(np.abs(ratio - 1.0) > 0.2))
    if abs(med - 1.0) <= 0.1 and bad < 0.2:
        return None
    return Finding(
        "error", "twist", subject,
        f"twist.linear.x is {med:.2f}x the speed the positions show (off by more than 20 % in {bad:.0%} of the "
        "samples): the twist is not the body-frame velocity (REP-105: twist in child_frame_id, x forward)",
        "publish the twist in the vehicle frame (child_frame_id), as the speed feature reads twist.linear.x",
    )  # fmt: skip


def twist_yaw_finding(subject: str, twist_yaw_rate: Floats, heading_rate: Floats) -> Finding | None:
    """twist.angular.z against the heading's rate of change: the ego history (and `imu: null`) read it."""
    if len(twist_yaw_rate) < _MIN_SAMPLES:
        return None
    if float(np.max(np.abs(twist_yaw_rate))) == 0.0:
        return Finding(
            "warning", "twist", subject,
            "twist.angular.z is 0 throughout: the ego history's yaw rate (and ego_state's with imu: null) reads it",
            "publish the yaw rate in the odometry's twist",
        )  # fmt: skip
    if float(np.std(heading_rate)) < 0.005:
        return None
    r = _corr(twist_yaw_rate, heading_rate)
    if r < 0.5:
        return Finding(
            "error", "twist", subject,
            f"twist.angular.z does not follow the heading's rate of change (r = {r:.2f}): the yaw rate the features "
            "read is wrong (REP-103: counter-clockwise positive, about z up)",
            "publish the odometry's yaw rate about z up in its twist",
        )  # fmt: skip
    return None


def steering_finding(
    subject: str,
    logged_steering: Floats,
    road_wheel_angle: Floats,
    steering_ratio: float,
    wheelbase_m: float,
) -> Finding | None:
    """The logged steering (divided by the configured `steering_ratio`) against the road-wheel angle the
    motion implies (atan(wheelbase * yaw rate / speed)). Ackermann `steering_angle` is the road-wheel
    angle, positive to the left; a steering-wheel angle is about 12-20 times larger."""
    turning = np.abs(road_wheel_angle) > 0.0005  # highway curves are a fraction of a degree
    if int(turning.sum()) < _MIN_SAMPLES:
        return _info("steering", subject, "steering not checked: the drive has too few turns")
    x, y = road_wheel_angle[turning], logged_steering[turning]
    raw_gain = float(np.dot(y, x) / np.dot(x, x))  # logged angle per road-wheel angle
    gain = raw_gain / steering_ratio
    fix = f"set build.labels.steering_ratio: {raw_gain:.2f}"
    if abs(gain) > 3.0 or abs(gain) < 1 / 3.0 or gain < 0:
        kind = "a steering-wheel angle" if raw_gain > 3.0 else "of the opposite sign" if raw_gain < 0 else "off"
        return Finding(
            "error", "steering", subject,
            f"logged steering_angle / steering_ratio {steering_ratio:g} is {gain:.2f}x the road-wheel angle the "
            f"motion implies (check.wheelbase_m {wheelbase_m:g}): {kind} (Ackermann: road-wheel angle, left positive)",
            fix,
        )  # fmt: skip
    if abs(gain - 1.0) > 0.3:
        return Finding(
            "warning", "steering", subject,
            f"logged steering_angle / steering_ratio {steering_ratio:g} is {gain:.2f}x the road-wheel angle the "
            f"motion implies (check.wheelbase_m {wheelbase_m:g})",
            f"{fix}, or correct check.wheelbase_m",
        )  # fmt: skip
    return None


def label_speed_finding(
    subject: str, logged_speed: Floats, travel_speed: Floats, min_speed_mps: float
) -> Finding | None:
    """The command label's speed against the odometry's (a status topic in km/h, a wheel speed off scale)."""
    moving = travel_speed >= min_speed_mps
    if int(moving.sum()) < _MIN_SAMPLES:
        return None
    med = float(np.median(logged_speed[moving] / travel_speed[moving]))
    if abs(med - 1.0) <= 0.2:
        return None
    hint = " (km/h?)" if 3.3 < med < 3.9 else ""
    return Finding(
        "warning", "label_speed", subject,
        f"the label's speed is {med:.2f}x the odometry's{hint}: target_speed is trained on it",
        "record the speed in m/s (AckermannDrive.speed), or take the command label from another role",
    )  # fmt: skip
