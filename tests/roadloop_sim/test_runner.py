from __future__ import annotations

import math

import pytest

from roadloop_sim.messages import MessageFactory
from roadloop_sim.runner import sanitize_command
from roadloop_sim.scenarios import SimulationConfig

CFG = SimulationConfig()
F = MessageFactory()


@pytest.mark.parametrize(
    ("steer", "speed", "accel", "invalid"),
    [
        (0.1, 10.0, 0.0, False),
        (-0.6, 0.0, 2.0, False),
        (math.nan, 10.0, 0.0, True),
        (0.0, math.inf, 0.0, True),
        (0.0, 10.0, math.nan, True),
        (0.7, 10.0, 0.0, True),  # beyond max_steering_angle 0.6
        (0.0, -1.0, 0.0, True),  # reversing is not a command a driving policy may give
        (0.0, 41.0, 0.0, True),  # above max_speed 40
        (0.0, 10.0, -1.0, True),  # acceleration is a magnitude
    ],
)
def test_sanitize_command(steer: float, speed: float, accel: float, invalid: bool) -> None:
    cmd = F.command(1_000_000_123, steer, speed, accel)
    applied, flagged = sanitize_command(cmd, CFG, F)
    assert flagged is invalid
    if invalid:  # replaced by a stop, same stamp
        assert (applied.drive.steering_angle, applied.drive.speed) == (0.0, 0.0)
        assert (applied.header.stamp.sec, applied.header.stamp.nanosec) == (1, 123)
    else:
        assert applied is cmd
