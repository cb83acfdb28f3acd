from __future__ import annotations

import math

import numpy as np
import pytest

from roadloop_core.features import OdomSample, Pose2D, interpolate_odometry, lookahead_point, to_ego_frame
from roadloop_core.features.geometry import bracket, wrap_angle, yaw_of


@pytest.mark.parametrize("yaw", [0.0, 0.5, -1.2, math.pi / 2, 3.0, -3.0])
def test_yaw_of_quaternion(yaw: float) -> None:
    assert yaw_of(0.0, 0.0, math.sin(yaw / 2), math.cos(yaw / 2)) == pytest.approx(yaw)


@pytest.mark.parametrize(
    ("a_yaw", "b_yaw", "w", "expected"),
    [
        (0.0, 1.0, 0.5, 0.5),
        (3.0, -3.0, 0.5, wrap_angle(3.0 + 0.5 * wrap_angle(-6.0))),  # through +-pi, not through 0
        (-3.1, 3.1, 0.5, -math.pi),
    ],
)
def test_interpolation_takes_the_short_way_round(a_yaw: float, b_yaw: float, w: float, expected: float) -> None:
    a = OdomSample(0, 0.0, 0.0, a_yaw, 1.0, 0.0)
    b = OdomSample(100, 10.0, -2.0, b_yaw, 3.0, 0.2)
    p = interpolate_odometry(a, b, round(100 * w))
    assert abs(wrap_angle(p.yaw - expected)) < 1e-9  # same heading (+pi and -pi are one angle)
    assert (p.x, p.y, p.speed, p.yaw_rate) == pytest.approx((10 * w, -2 * w, 1 + 2 * w, 0.2 * w))
    assert p.accel == pytest.approx(2.0 / 100e-9)


def _pose(x: float, y: float, yaw: float) -> Pose2D:
    return Pose2D(0, x, y, yaw, 0.0, 0.0, 0.0)


STRAIGHT = np.array([[0.0, 0.0], [10.0, 0.0], [20.0, 0.0]])
CORNER = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])


@pytest.mark.parametrize(
    ("route", "pose", "lookahead", "expected"),
    [
        (STRAIGHT, _pose(0.0, 0.0, 0.0), 5.0, (5.0, 0.0)),
        (STRAIGHT, _pose(3.0, 2.0, 0.0), 5.0, (8.0, 0.0)),  # from the projection, not from the ego
        (STRAIGHT, _pose(18.0, 0.0, 0.0), 5.0, (23.0, 0.0)),  # past the end: last segment extended
        (CORNER, _pose(8.0, 0.0, 0.0), 5.0, (10.0, 3.0)),  # around the corner by arc length
        (STRAIGHT, _pose(-5.0, 0.0, 0.0), 0.0, (0.0, 0.0)),  # before the start: clamps to the first point
        (np.array([[4.0, 4.0]]), _pose(0.0, 0.0, 0.0), 5.0, (4.0, 4.0)),  # one-point route
    ],
)
def test_lookahead_point(route: np.ndarray, pose: Pose2D, lookahead: float, expected: tuple[float, float]) -> None:
    np.testing.assert_allclose(lookahead_point(route, pose, lookahead), expected, atol=1e-12)


@pytest.mark.parametrize(
    ("pose", "point", "expected"),
    [
        (_pose(0, 0, 0), (1, 0), (1, 0)),
        (_pose(0, 0, math.pi / 2), (0, 1), (1, 0)),  # facing +y: a point at +y is straight ahead
        (_pose(1, 1, math.pi), (0, 1), (1, 0)),
        (_pose(0, 0, 0), (0, 2), (0, 2)),  # y is left
    ],
)
def test_to_ego_frame(pose: Pose2D, point: tuple[float, float], expected: tuple[float, float]) -> None:
    np.testing.assert_allclose(to_ego_frame(pose, np.array(point, dtype=float)), expected, atol=1e-12)


@pytest.mark.parametrize(
    ("stamps", "t", "expected"),
    [
        ([10, 20, 30], 15, (10, 20)),
        ([10, 20, 30], 20, (10, 20)),  # exact hit: the previous sample too (for acceleration)
        ([10, 20, 30], 10, (10, 10)),
        ([10, 20, 30], 5, None),
        ([10, 20, 30], 35, None),
        ([], 1, None),
    ],
)
def test_bracket(stamps: list[int], t: int, expected: tuple[int, int] | None) -> None:
    samples = [OdomSample(s, 0, 0, 0, 0, 0) for s in stamps]
    got = bracket(samples, t)
    assert (None if got is None else (got[0].stamp_ns, got[1].stamp_ns)) == expected
