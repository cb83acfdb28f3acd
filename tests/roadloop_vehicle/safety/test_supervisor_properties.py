"""Whatever the policy and the sensors do, what leaves the supervisor is finite and within every limit."""

from __future__ import annotations

import math
from dataclasses import replace

from hypothesis import given, settings
from hypothesis import strategies as st

from roadloop_core.config import config_dir
from roadloop_core.registry import load_registry
from roadloop_vehicle.control import Command
from roadloop_vehicle.params import load_vehicle_params
from roadloop_vehicle.safety import SafetyInput, SafetySupervisor, State

REG = load_registry(config_dir() / "topics.yaml")
VEHICLE = load_vehicle_params(config_dir() / "vehicle.yaml")  # what the car runs on
LIMITS = VEHICLE.safety.vehicle_limits
CFG = replace(VEHICLE.safety.safety, extra_monitored_roles=[], recovery_frames=3)
OBSERVED = ("camera", "odometry")  # what a camera model reads (the observation spec's roles)
DT_S = 0.1

wild = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True, width=32),
    st.floats(min_value=-50, max_value=50),
)
frames = st.lists(
    st.tuples(
        st.one_of(st.none(), st.builds(Command, wild, wild, wild)),  # the command (or none this frame)
        st.integers(min_value=0, max_value=1_000_000_000),  # camera age, ns
        st.integers(min_value=0, max_value=200_000_000),  # odometry age, ns
    ),
    min_size=1,
    max_size=60,
)


@settings(max_examples=150, deadline=None)
@given(frames)
def test_output_always_finite_and_limited(rows: list[tuple[Command | None, int, int]]) -> None:
    sup = SafetySupervisor(CFG, LIMITS, REG, observed_roles=OBSERVED)
    prev = Command(0.0, 0.0, 0.0)
    for i, (cmd, cam_age, odom_age) in enumerate(rows):
        now = 10**12 + i * int(DT_S * 1e9)
        out = sup.step(
            SafetyInput(now_ns=now, last_seen_ns={"camera": now - cam_age, "odometry": now - odom_age}, command=cmd)
        )
        c = out.command
        assert all(math.isfinite(v) for v in (c.steering_angle, c.speed, c.acceleration, c.jerk))
        assert abs(c.steering_angle) <= LIMITS.max_steering_rad + 1e-9
        assert 0.0 <= c.speed <= LIMITS.max_speed_mps
        assert -LIMITS.max_decel_mps2 - 1e-9 <= c.acceleration <= LIMITS.max_accel_mps2 + 1e-9
        assert abs(c.steering_angle - prev.steering_angle) <= LIMITS.max_steering_rate_radps * DT_S + 1e-9
        assert abs(c.acceleration - prev.acceleration) <= LIMITS.max_jerk_mps3 * DT_S + 1e-9
        if out.state is not State.ACTIVE:
            assert c.speed <= prev.speed + 1e-9, "never speeds up outside ACTIVE"
        if out.faults:
            assert out.state in (State.INIT, State.FALLBACK)
        prev = c
