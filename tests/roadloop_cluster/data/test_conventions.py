"""The bag checks' pure functions, table-driven: what each frame convention, rate, clock, topic and split finding
says."""

from __future__ import annotations

import math

import numpy as np
import pytest

from roadloop_cluster.data.check import registry_findings, split_finding, topic_findings
from roadloop_cluster.data.config import BuildConfig, DatasetConfig, LabelConfig
from roadloop_cluster.data.conventions import (
    Finding,
    accel_unit_finding,
    clock_finding,
    coverage_finding,
    gap_finding,
    heading_finding,
    imu_yaw_finding,
    label_speed_finding,
    measured_rate_hz,
    rate_finding,
    steering_finding,
    twist_finding,
    twist_yaw_finding,
)
from roadloop_core.config import config_dir
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.registry import load_registry

G = 9.80665
RNG = np.random.default_rng(0)
N = 200
YAW_RATE = 0.03 * np.sin(np.linspace(0, 12, N))  # curves both ways
SPEED = np.full(N, 29.0)


def severity(f: Finding | None) -> str | None:
    return None if f is None else f.severity


@pytest.mark.parametrize(
    ("stamps_hz", "expected"),
    [(100.0, 100.0), (20.0, 20.0), (9.5, 9.5)],
)
def test_measured_rate_is_the_median_interval(stamps_hz: float, expected: float) -> None:
    stamps = np.round(np.arange(50) * 1e9 / stamps_hz).astype(np.int64)
    stamps = np.concatenate([stamps, stamps[-1:] + 5_000_000_000])  # one long gap does not move it
    assert measured_rate_hz(stamps) == pytest.approx(expected, rel=1e-6)
    assert measured_rate_hz(stamps[:2]) is None


@pytest.mark.parametrize(
    ("measured", "expected_hz", "want", "text"),
    [
        (50.0, 50.0, None, ""),
        (55.0, 50.0, None, ""),  # within 25 %
        (100.0, 50.0, "warning", "arrives at 100 Hz, the registry says 50 Hz"),
        (10.0, 50.0, "warning", "stale between two messages (after stale_factor / rate_hz = 0.06 s: fault stale:imu)"),
        (None, 50.0, None, ""),
    ],
)
def test_rate_against_the_registry(measured: float | None, expected_hz: float, want: str | None, text: str) -> None:
    f = rate_finding("/imu (imu)", "imu", measured, expected_hz, 3.0, 0.25)
    assert severity(f) == want
    if f is not None:
        assert text in f.message and f.fix == f"set topics.imu.rate_hz: {measured:.3g} in the topic registry"


def test_gaps_coverage_and_clocks() -> None:
    stamps = (np.arange(100) * 50_000_000).astype(np.int64)
    assert gap_finding("s", "odometry", stamps, 0.15) is None
    gappy = np.concatenate([stamps[:40], stamps[60:]])
    f = gap_finding("s", "odometry", gappy, 0.15)
    assert (
        f is not None
        and f.severity == "warning"
        and "1 silence(s) longer than 0.15 s (longest 1.05 s, 1.9 s in)" in f.message
    )
    assert coverage_finding("s", 0, 95, 0, 100) is None
    f = coverage_finding("s", 50 * 10**9, 100 * 10**9, 0, 100 * 10**9)
    assert f is not None and "covers 50.0-100.0 s of the bag's 100.0 s (50%)" in f.message
    assert clock_finding({"/imu": 0.001, "/odom": 0.008}, 0.5) is None
    f = clock_finding({"/imu": -18.0, "/odom": 0.008}, 0.5)
    assert f is not None and f.severity == "error" and f.subject == "/imu vs /odom" and "different clocks" in f.message


@pytest.mark.parametrize(
    ("imu", "frame", "want", "fix"),
    [
        (YAW_RATE + RNG.normal(0, 0.002, N), "flu", None, ""),
        (-(YAW_RATE + RNG.normal(0, 0.002, N)), "flu", "error", "set observation.imu_frame: frd"),  # z down
        (-(YAW_RATE + RNG.normal(0, 0.002, N)), "frd", "error", "set observation.imu_frame: flu"),  # already flipped
        (RNG.normal(0, 0.03, N), "flu", "error", "set observation.imu: null"),  # another sensor's axis
        (np.degrees(YAW_RATE), "flu", "error", "publish rad/s"),
    ],
)
def test_imu_yaw_rate_against_the_odometry(imu: np.ndarray, frame: str, want: str | None, fix: str) -> None:
    f = imu_yaw_finding("/imu (imu)", imu, YAW_RATE, frame, 0.5)
    assert severity(f) == want
    if f is not None:
        assert fix in f.fix


def test_imu_yaw_rate_on_a_straight_drive_is_not_judged() -> None:
    f = imu_yaw_finding("/imu (imu)", RNG.normal(0, 0.002, N), np.zeros(N), "flu", 0.5)
    assert f is not None and f.severity == "info" and "too few turns" in f.message


ODOM_ACCEL = 0.5 * np.sin(np.linspace(0, 6, N))


@pytest.mark.parametrize(
    ("z", "x", "frame", "unit", "want", "fix"),
    [
        (np.full(N, G), ODOM_ACCEL, "flu", "mps2", None, ""),
        (np.full(N, -G), ODOM_ACCEL, "flu", "mps2", "error", "set observation.imu_frame: frd"),
        (np.full(N, -G), ODOM_ACCEL, "frd", "mps2", None, ""),  # configured: z down
        (np.full(N, 1.0), ODOM_ACCEL / G, "flu", "mps2", "error", "set observation.imu_accel_unit: g"),
        (np.full(N, 1.0), ODOM_ACCEL / G, "flu", "g", None, ""),
        (np.full(N, G), ODOM_ACCEL, "flu", "g", "error", "set observation.imu_accel_unit: mps2"),
        (np.zeros(N), ODOM_ACCEL / G, "flu", "mps2", "error", "set observation.imu_accel_unit: g"),  # gravity removed
        (np.zeros(N), ODOM_ACCEL, "flu", "mps2", None, ""),
    ],
)
def test_accelerations_units_and_gravity(
    z: np.ndarray, x: np.ndarray, frame: str, unit: str, want: str | None, fix: str
) -> None:
    f = accel_unit_finding("/imu (imu)", z + RNG.normal(0, 0.05, N), x, ODOM_ACCEL, frame, unit)
    assert severity(f) == want
    if f is not None:
        assert f.fix == fix


TRAVEL = np.linspace(-math.pi, math.pi, N, endpoint=False)  # every direction, so wrapping is exercised


@pytest.mark.parametrize(
    ("heading", "offset", "want", "text"),
    [
        (TRAVEL + math.radians(0.2), 0.0, None, ""),
        (TRAVEL + math.radians(0.8), 0.0, "warning", "set observation.odometry_yaw_offset_deg: -0.80"),
        (TRAVEL + math.radians(0.8), -0.8, None, ""),  # configured
        (TRAVEL + math.radians(12.0), 0.0, "error", "set observation.odometry_yaw_offset_deg: -12.00"),
        (math.pi / 2 - TRAVEL, 0.0, "error", "ENU frame with x forward"),  # a compass heading (clockwise from north)
    ],
)
def test_heading_against_the_direction_of_travel(
    heading: np.ndarray, offset: float, want: str | None, text: str
) -> None:
    f = heading_finding("/odom (odometry)", heading, TRAVEL, SPEED, offset, 5.0, 0.5, 3.0)
    assert severity(f) == want
    if f is not None:
        assert text in f.fix


def test_heading_needs_motion() -> None:
    f = heading_finding("/odom (odometry)", TRAVEL, TRAVEL, np.zeros(N), 0.0, 5.0, 0.5, 3.0)
    assert f is not None and f.severity == "info"


@pytest.mark.parametrize(
    ("twist", "want"),
    [
        (SPEED * 1.01, None),
        (SPEED * np.cos(TRAVEL), "error"),  # a world-frame x velocity (east), not the body's forward speed
        (SPEED / 3.6, "error"),
    ],
)
def test_twist_is_the_body_frame_speed(twist: np.ndarray, want: str | None) -> None:
    assert severity(twist_finding("/odom (odometry)", twist, SPEED, 3.0)) == want


@pytest.mark.parametrize(
    ("twist_rate", "want"),
    [(YAW_RATE, None), (-YAW_RATE, "error"), (np.zeros(N), "warning")],
)
def test_twist_yaw_rate(twist_rate: np.ndarray, want: str | None) -> None:
    assert severity(twist_yaw_finding("/odom (odometry)", twist_rate, YAW_RATE)) == want


ROAD_WHEEL = np.arctan(2.7 * YAW_RATE / SPEED)


@pytest.mark.parametrize(
    ("logged", "ratio", "want", "fix"),
    [
        (ROAD_WHEEL, 1.0, None, ""),
        (15.3 * ROAD_WHEEL, 1.0, "error", "set build.labels.steering_ratio: 15.30"),  # a steering-wheel angle
        (15.3 * ROAD_WHEEL, 15.3, None, ""),
        (-15.3 * ROAD_WHEEL, 15.3, "error", "set build.labels.steering_ratio: -15.30"),  # right positive
        (1.5 * ROAD_WHEEL, 1.0, "warning", "correct check.wheelbase_m"),
    ],
)
def test_steering_angle_scale(logged: np.ndarray, ratio: float, want: str | None, fix: str) -> None:
    f = steering_finding("/status (vehicle_status)", logged, ROAD_WHEEL, ratio, 2.7)
    assert severity(f) == want
    if f is not None:
        assert fix in f.fix


def test_label_speed() -> None:
    assert label_speed_finding("s", SPEED * 1.01, SPEED, 3.0) is None
    f = label_speed_finding("s", SPEED * 3.6, SPEED, 3.0)
    assert f is not None and "3.60x the odometry's (km/h?)" in f.message


# -- topics against the config and the bag (pure: no bag opened) ---------------------------------------------

REGISTRY = load_registry(config_dir() / "topics.yaml")
NO_VIDEO_NO_ROUTE = {
    "/sensors/imu": "sensor_msgs/msg/Imu",
    "/localization/odometry": "nav_msgs/msg/Odometry",
    "/control/command": "ackermann_msgs/msg/AckermannDriveStamped",
}


@pytest.mark.parametrize(
    ("cfg", "bag", "expected"),
    [
        (DatasetConfig(), NO_VIDEO_NO_ROUTE, {
            "/sensors/camera/front/image (camera)": "a log without video: set observation.camera: null (state-only)",
            "/planning/route (route)": "set observation.route_source: none (a model without a route input) and "
                                       "route: null, or hindsight",
        }),
        (DatasetConfig(ObservationSpec(camera=None, route=None, route_source="none")), NO_VIDEO_NO_ROUTE, {}),
        (DatasetConfig(ObservationSpec(camera=None, route=None, route_source="none")),
         {**NO_VIDEO_NO_ROUTE, "/sensors/imu": "sensor_msgs/msg/NavSatFix"},
         {"/sensors/imu (imu)": "the bag has no sensor_msgs/msg/Imu topic for observation.imu"}),
        (DatasetConfig(ObservationSpec(camera=None, route=None, route_source="none"),
                       BuildConfig(labels=LabelConfig(command="command_raw"))),
         NO_VIDEO_NO_ROUTE,
         {"/control/command_raw (command_raw)": "set topics.command_raw.name to the bag's /control/command"}),
    ],
)  # fmt: skip
def test_topic_findings_name_every_missing_role_with_its_fix(
    cfg: DatasetConfig, bag: dict[str, str], expected: dict[str, str]
) -> None:
    found = topic_findings(cfg, REGISTRY, bag)
    assert {f.subject for f in found} == set(expected)
    for f in found:
        assert expected[f.subject] in f.fix and f.severity == "error"


def test_registry_findings_and_split_notes() -> None:
    cfg = DatasetConfig(build=BuildConfig(labels=LabelConfig(command="gnss", waypoints="trajectory")))
    found = {f.subject: f for f in registry_findings(cfg, REGISTRY)}
    assert "reads ackermann_msgs/msg/AckermannDriveStamped" in found["/sensors/gnss/fix (gnss)"].message
    assert "trajectory" not in " ".join(found)  # a Path role is a valid waypoint source
    assert registry_findings(DatasetConfig(), REGISTRY) == []
    one = DatasetConfig(ObservationSpec(camera=None, ego_history_steps=10))
    assert split_finding(one, [300.0]).severity == "info" and "5 block(s)" in split_finding(one, [300.0]).message
    # split_by auto: a 70 s bag (shorter than two 60 s blocks) gets shorter blocks, each > 2 x the 6.2 s gap
    shrunk = split_finding(one, [70.0])
    assert shrunk.severity == "info" and "5 block(s) of about 14 s (shorter than build.split_block_s" in shrunk.message
    assert "4 block(s) of about 15 s" in split_finding(one, [60.0]).message  # the 60 s drive
    too_short = split_finding(one, [20.0])  # not even two blocks of 12.4 s
    assert too_short.severity == "warning" and "set build.split_block_s to at most 10 s" in too_short.fix
    strict = DatasetConfig(ObservationSpec(camera=None, ego_history_steps=10), BuildConfig(split_by="time"))
    short = split_finding(strict, [70.0])  # an explicit split_by time keeps the configured block length
    assert short.severity == "warning" and "set build.split_block_s to at most 35 s" in short.fix
    assert "split by bag" in split_finding(one, [300.0, 200.0]).message
