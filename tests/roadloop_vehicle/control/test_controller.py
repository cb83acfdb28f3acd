"""Controller: pure pursuit geometry and the PID, table-driven."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from roadloop_core.config import config_dir
from roadloop_vehicle.control import Controller, ControllerInput
from roadloop_vehicle.control.controller import lookahead_point
from roadloop_vehicle.params import load_vehicle_params

VEHICLE = load_vehicle_params(config_dir() / "vehicle.yaml")  # what the car runs on
CFG, LIMITS = VEHICLE.drive.controller, VEHICLE.drive.vehicle_limits


def line(dx: float, dy: float, n: int = 8) -> np.ndarray:
    return np.array([(dx * (i + 1), dy * (i + 1)) for i in range(n)], np.float32)


def arc(radius: float, n: int = 40, step: float = 1.0) -> np.ndarray:
    """Points along a left circle of `radius` starting at the origin heading +x."""
    s = np.arange(1, n + 1) * step
    return np.stack([radius * np.sin(s / radius), radius * (1 - np.cos(s / radius))], axis=1).astype(np.float32)


@pytest.mark.parametrize(
    ("waypoints", "speed", "expect"),
    [
        (line(2.0, 0.0), 5.0, lambda s: abs(s) < 1e-6),  # straight ahead
        (line(2.0, 0.5), 5.0, lambda s: s > 0.0),  # drifting left -> steer left
        (line(2.0, -0.5), 5.0, lambda s: s < 0.0),  # right -> right
        (line(0.1, 5.0), 5.0, lambda s: math.isclose(s, LIMITS.max_steering_rad)),  # hard left is clamped
        (np.zeros((8, 2), np.float32), 5.0, lambda s: s == 0.0),  # degenerate: straight
    ],
)
def test_steering_direction(waypoints: np.ndarray, speed: float, expect: object) -> None:
    cmd = Controller(CFG, LIMITS).step(ControllerInput(waypoints, 5.0, speed, 0.1))
    assert expect(cmd.steering_angle), cmd  # type: ignore[operator]


@pytest.mark.parametrize("radius", [15.0, 30.0, 60.0])
def test_pure_pursuit_recovers_curvature_of_an_arc(radius: float) -> None:
    # On a circle, pure pursuit's steering is the Ackermann angle atan(L / R) whatever the look-ahead.
    cmd = Controller(CFG, LIMITS).step(ControllerInput(arc(radius), 5.0, 5.0, 0.1))
    assert cmd.steering_angle == pytest.approx(math.atan(CFG.wheelbase_m / radius), rel=0.02)


@pytest.mark.parametrize(
    ("speed", "expected"),
    [(0.0, CFG.lookahead_min_m), (10.0, CFG.lookahead_min_m + 8.0), (100.0, CFG.lookahead_max_m)],
)
def test_lookahead_grows_with_speed_and_is_clamped(speed: float, expected: float) -> None:
    assert Controller(CFG, LIMITS).lookahead(speed) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("distance", "point"),
    [(1.0, (1.0, 0.0)), (3.0, (2.0, 1.0)), (6.0, (2.0, 4.0))],  # along the bend, then extrapolated
)
def test_lookahead_point_walks_the_polyline(distance: float, point: tuple[float, float]) -> None:
    wp = np.array([[2.0, 0.0], [2.0, 2.0]], np.float32)
    assert lookahead_point(wp, distance) == pytest.approx(point)


@pytest.mark.parametrize(
    ("target", "speed", "sign"),
    [(10.0, 5.0, 1), (2.0, 8.0, -1), (5.0, 5.0, 0)],
)
def test_pid_accelerates_toward_target(target: float, speed: float, sign: int) -> None:
    cmd = Controller(CFG, LIMITS).step(ControllerInput(line(2.0, 0.0), target, speed, 0.1))
    assert np.sign(round(cmd.acceleration, 9)) == sign
    assert -CFG.max_braking_mps2 <= cmd.acceleration <= LIMITS.max_accel_mps2


def test_speed_and_acceleration_limits() -> None:
    cmd = Controller(CFG, LIMITS).step(ControllerInput(line(2.0, 0.0), 500.0, 0.0, 0.1))
    assert cmd.speed == LIMITS.max_speed_mps
    assert cmd.acceleration == LIMITS.max_accel_mps2
    assert Controller(CFG, LIMITS).step(ControllerInput(line(2.0, 0.0), -3.0, 0.0, 0.1)).speed == 0.0


def test_integral_accumulates_and_resets() -> None:
    c = Controller(replace(CFG, kp=0.0, ki=1.0), LIMITS)
    a1 = c.step(ControllerInput(line(2.0, 0.0), 6.0, 5.0, 0.1)).acceleration
    a2 = c.step(ControllerInput(line(2.0, 0.0), 6.0, 5.0, 0.1)).acceleration
    assert a2 > a1 > 0
    c.reset()
    assert c.step(ControllerInput(line(2.0, 0.0), 6.0, 5.0, 0.1)).acceleration == pytest.approx(a1)


def test_non_finite_policy_output_propagates_for_the_supervisor() -> None:
    wp = line(2.0, 0.0)
    wp[3, 1] = np.nan
    assert not Controller(CFG, LIMITS).step(ControllerInput(wp, 5.0, 5.0, 0.1)).is_finite()
    assert not Controller(CFG, LIMITS).step(ControllerInput(line(2, 0), math.inf, 5.0, 0.1)).is_finite()


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("wheelbase_m", 0.0, r"wheelbase_m: 0\.0 is outside \[0\.5, 10\] m"),
        ("kp", math.nan, r"kp: \.nan is not finite"),
        ("lookahead_min_m", 30.0, r"lookahead_min_m <= lookahead_max_m"),
    ],
)
def test_invalid_config_rejected(field: str, value: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        replace(CFG, **{field: value})


def test_controller_brakes_at_its_own_limit_not_the_vehicle_hard_limit() -> None:
    # Full braking demand: the PID asks for much more than either limit allows.
    cmd = Controller(replace(CFG, kp=20.0), LIMITS).step(ControllerInput(line(2.0, 0.0), 0.0, 20.0, 0.1))
    assert cmd.acceleration == -CFG.max_braking_mps2
    assert CFG.max_braking_mps2 < LIMITS.max_decel_mps2
