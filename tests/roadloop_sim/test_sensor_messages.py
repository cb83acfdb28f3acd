"""Round trips: every message the simulator builds survives CDR encoding, and GNSS survives ENU <-> WGS84."""

from __future__ import annotations

import math

import numpy as np
import pytest

from roadloop_sim.scenarios import GeodeticOrigin
from roadloop_sim.sensor_messages import MessageFactory, enu_to_geodetic, geodetic_to_enu

STAMP = 1_700_000_123_450_000_000


@pytest.fixture(scope="module")
def factory() -> MessageFactory:
    return MessageFactory("jazzy")


def _round_trip(factory: MessageFactory, msg: object) -> object:
    typename = msg.__msgtype__  # type: ignore[attr-defined]
    return factory.store.deserialize_cdr(factory.store.serialize_cdr(msg, typename), typename)


def test_image_round_trip(factory: MessageFactory) -> None:
    rgb = np.random.default_rng(0).integers(0, 255, (8, 12, 3), dtype=np.uint8)
    out = _round_trip(factory, factory.image(rgb, STAMP))
    assert (out.height, out.width, out.encoding, out.step) == (8, 12, "rgb8", 36)  # type: ignore[attr-defined]
    assert np.array_equal(np.asarray(out.data).reshape(8, 12, 3), rgb)  # type: ignore[attr-defined]
    assert (out.header.stamp.sec, out.header.stamp.nanosec) == (1_700_000_123, 450_000_000)  # type: ignore[attr-defined]


def test_imu_odometry_gnss_round_trip(factory: MessageFactory) -> None:
    imu = _round_trip(factory, factory.imu(STAMP, 0.5, 1.0, -2.0, 0.1))
    assert (imu.linear_acceleration.x, imu.linear_acceleration.y, imu.angular_velocity.z) == (1.0, -2.0, 0.1)  # type: ignore[attr-defined]
    assert imu.linear_acceleration.z == pytest.approx(9.80665)  # type: ignore[attr-defined]
    odom = _round_trip(factory, factory.odometry(STAMP, 3.0, 4.0, math.pi / 2, 10.0, 0.2, 0.05))
    assert odom.header.frame_id == "map" and odom.child_frame_id == "base_link"  # type: ignore[attr-defined]
    assert odom.pose.pose.orientation.z == pytest.approx(math.sin(math.pi / 4))  # type: ignore[attr-defined]
    assert odom.twist.twist.linear.x == 10.0  # type: ignore[attr-defined]
    origin = GeodeticOrigin()
    fix = _round_trip(factory, factory.navsatfix(STAMP, 100.0, -50.0, origin))
    assert geodetic_to_enu(fix.latitude, fix.longitude, fix.altitude, origin) == pytest.approx(
        (100.0, -50.0, 0.0), abs=1e-6
    )  # type: ignore[attr-defined]


def test_path_diagnostics_command_round_trip(factory: MessageFactory) -> None:
    pts = np.array([[0.0, 0.0], [1.0, 1.0], [2.0, 2.0]])
    path = _round_trip(factory, factory.path(STAMP, pts))
    assert [(p.pose.position.x, p.pose.position.y) for p in path.poses] == [(0.0, 0.0), (1.0, 1.0), (2.0, 2.0)]  # type: ignore[attr-defined]
    assert path.poses[-1].pose.orientation.z == pytest.approx(math.sin(math.pi / 8))  # type: ignore[attr-defined]
    diag = _round_trip(factory, factory.diagnostics(STAMP, "sim", 1, "warn", [("k", "v")]))
    assert diag.status[0].values[0].key == "k" and diag.status[0].level == 1  # type: ignore[attr-defined]
    cmd = _round_trip(factory, factory.command(STAMP, 0.25, 12.5, 1.5))
    assert (cmd.drive.steering_angle, cmd.drive.speed, cmd.drive.acceleration) == (0.25, 12.5, 1.5)  # type: ignore[attr-defined]


@pytest.mark.parametrize(("east", "north", "up"), [(0.0, 0.0, 0.0), (1000.0, -2000.0, 3.0), (-5.5, 7.25, -1.0)])
def test_geodetic_round_trip(east: float, north: float, up: float) -> None:
    origin = GeodeticOrigin(latitude=-33.9, longitude=151.2, altitude=10.0)
    lat, lon, alt = enu_to_geodetic(east, north, up, origin)
    assert geodetic_to_enu(lat, lon, alt, origin) == pytest.approx((east, north, up), abs=1e-6)
