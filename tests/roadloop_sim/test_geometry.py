from __future__ import annotations

import math

import numpy as np
import pytest

from roadloop_sim.geometry import arc_lengths, point_at, project, to_ego, wrap_angle, yaw_to_quaternion

L_SHAPE = np.array([[0.0, 0.0], [10.0, 0.0], [10.0, 10.0]])


@pytest.mark.parametrize(
    ("x", "y", "s", "lateral"),
    [
        (5.0, 0.0, 5.0, 0.0),
        (5.0, 2.0, 5.0, 2.0),  # left of the first leg
        (5.0, -1.5, 5.0, -1.5),  # right of it
        (11.0, 5.0, 15.0, -1.0),  # right of the second leg (heading north)
        (-3.0, 0.0, 0.0, 3.0),  # before the start: clamped to it, the offset is the distance
    ],
)
def test_project(x: float, y: float, s: float, lateral: float) -> None:
    got_s, got_lat = project(L_SHAPE, arc_lengths(L_SHAPE), x, y)
    assert got_s == pytest.approx(s)
    assert got_lat == pytest.approx(lateral)


@pytest.mark.parametrize(
    ("at", "expected"),
    [
        (0.0, (0.0, 0.0, 0.0)),
        (5.0, (5.0, 0.0, 0.0)),
        (15.0, (10.0, 5.0, math.pi / 2)),
        (99.0, (10.0, 10.0, math.pi / 2)),
    ],
)
def test_point_at(at: float, expected: tuple[float, float, float]) -> None:
    assert point_at(L_SHAPE, arc_lengths(L_SHAPE), at) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("point", "ego", "expected"),
    [
        ((1.0, 0.0), (0.0, 0.0, 0.0), (1.0, 0.0)),
        ((0.0, 1.0), (0.0, 0.0, math.pi / 2), (1.0, 0.0)),  # ego faces north: the point is ahead
        ((1.0, 1.0), (1.0, 0.0, 0.0), (0.0, 1.0)),  # to the left
    ],
)
def test_to_ego(point: tuple[float, float], ego: tuple[float, float, float], expected: tuple[float, float]) -> None:
    assert to_ego(*point, *ego) == pytest.approx(expected, abs=1e-12)


@pytest.mark.parametrize(
    ("a", "w"), [(0.0, 0.0), (3 * math.pi, math.pi), (-3 * math.pi / 2, math.pi / 2), (7.0, 7.0 - 2 * math.pi)]
)
def test_wrap_angle(a: float, w: float) -> None:
    assert abs(wrap_angle(a)) == pytest.approx(abs(w))


def test_quaternion_is_unit_and_round_trips() -> None:
    for yaw in np.linspace(-3.1, 3.1, 9):
        x, y, z, w = yaw_to_quaternion(float(yaw))
        assert x * x + y * y + z * z + w * w == pytest.approx(1.0)
        assert math.atan2(2 * w * z, 1 - 2 * z * z) == pytest.approx(yaw)
