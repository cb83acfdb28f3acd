"""SafetySupervisor: the transition table, then frame-by-frame scenario tables (openpilot-style)."""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field, replace

import numpy as np
import pytest

from roadloop_core.config import config_dir
from roadloop_core.registry import load_registry
from roadloop_vehicle.control import Command
from roadloop_vehicle.params import load_vehicle_params
from roadloop_vehicle.safety import SafetyConfig, SafetyInput, SafetySupervisor, State, transition

REG = load_registry(config_dir() / "topics.yaml")
M = 3
VEHICLE = load_vehicle_params(config_dir() / "vehicle.yaml")  # what the car runs on
LIMITS = VEHICLE.safety.vehicle_limits
CFG = replace(VEHICLE.safety.safety, extra_monitored_roles=[], recovery_frames=M)
OBSERVED = ("camera", "odometry")  # what a camera model reads (the observation spec's roles)
DT = 100_000_000  # 10 Hz frames
# stale after stale_factor / rate: camera 10 Hz -> 0.3 s, odometry 50 Hz -> 0.06 s
CAM_STALE = int(REG["camera"].stale_after_s(REG.stale_factor) * 1e9)
ODOM_STALE = int(REG["odometry"].stale_after_s(REG.stale_factor) * 1e9)

S = State


@pytest.mark.parametrize(
    ("state", "healthy", "count", "expected"),
    [
        (S.INIT, False, 0, (S.INIT, 0)),
        (S.INIT, True, 0, (S.ACTIVE, 1)),
        (S.ACTIVE, True, 5, (S.ACTIVE, 6)),
        (S.ACTIVE, False, 5, (S.FALLBACK, 0)),
        (S.FALLBACK, False, 0, (S.FALLBACK, 0)),
        (S.FALLBACK, True, 0, (S.RECOVERING, 1)),
        (S.RECOVERING, True, 1, (S.RECOVERING, 2)),
        (S.RECOVERING, True, M - 1, (S.ACTIVE, M)),
        (S.RECOVERING, False, M - 1, (S.FALLBACK, 0)),
    ],
)
def test_transition_table(state: State, healthy: bool, count: int, expected: tuple[State, int]) -> None:
    assert transition(state, healthy, count, M) == expected


def test_recovery_frames_one_goes_straight_back() -> None:
    assert transition(S.FALLBACK, True, 0, 1) == (S.ACTIVE, 1)


GOOD = Command(steering_angle=0.05, speed=8.0, acceleration=0.5)
NAN = Command(steering_angle=math.nan, speed=8.0, acceleration=0.5)


@dataclass
class Frame:
    """One row of a scenario: what is late or wrong in this frame, and what must come out."""

    state: State
    camera_age_ns: int = 0
    odom_age_ns: int = 0
    cmd: Command | None = GOOD
    faults: tuple[str, ...] = ()
    waypoint_offset: float = 0.0
    extra: dict[str, object] = field(default_factory=dict)


def run(rows: list[Frame], cfg: SafetyConfig = CFG) -> list[tuple[State, tuple[str, ...], Command]]:
    sup = SafetySupervisor(cfg, LIMITS, REG, observed_roles=OBSERVED)
    out = []
    for i, row in enumerate(rows):
        now = 10**12 + i * DT
        wp = np.stack([np.arange(1, 9, dtype=np.float32) * 2, np.full(8, row.waypoint_offset, np.float32)], axis=1)
        res = sup.step(
            SafetyInput(
                now_ns=now,
                last_seen_ns={"camera": now - row.camera_age_ns, "odometry": now - row.odom_age_ns},
                command=row.cmd,
                waypoints=wp,
                target_speed=8.0,
            )
        )
        out.append((res.state, res.faults, res.command))
        assert res.state is row.state, f"frame {i}: {res.state} != {row.state} ({res.faults})"
        assert res.faults == row.faults, f"frame {i}"
        if res.state is not State.ACTIVE:
            assert res.reason, f"frame {i}: a non-active frame must say why"
    return out


STALE_CAM = CAM_STALE + 1
STALE_ODOM = ODOM_STALE + 1

SCENARIOS = {
    "stale camera -> fallback, recovery after M healthy frames": [
        Frame(S.ACTIVE),
        Frame(S.ACTIVE, camera_age_ns=CAM_STALE),  # exactly at the limit: still fresh
        Frame(S.FALLBACK, camera_age_ns=STALE_CAM, faults=("stale:camera",)),
        Frame(S.RECOVERING),
        Frame(S.RECOVERING),
        Frame(S.ACTIVE),
    ],
    "stale odometry": [
        Frame(S.ACTIVE),
        Frame(S.FALLBACK, odom_age_ns=STALE_ODOM, faults=("stale:odometry",)),
        Frame(S.FALLBACK, odom_age_ns=STALE_ODOM, faults=("stale:odometry",)),
        Frame(S.RECOVERING),
    ],
    "NaN output -> fallback in the same frame": [
        Frame(S.ACTIVE),
        Frame(S.FALLBACK, cmd=NAN, faults=("nan_output",)),
        Frame(S.RECOVERING),
        Frame(S.RECOVERING),
        Frame(S.ACTIVE),
    ],
    "a fault while recovering restarts the count": [
        Frame(S.ACTIVE),
        Frame(S.FALLBACK, cmd=None, faults=("no_command",)),
        Frame(S.RECOVERING),
        Frame(S.RECOVERING),
        Frame(S.FALLBACK, camera_age_ns=STALE_CAM, faults=("stale:camera",)),
        Frame(S.RECOVERING),
        Frame(S.RECOVERING),
        Frame(S.ACTIVE),
    ],
    "nothing received yet stays in INIT": [
        Frame(S.INIT, camera_age_ns=STALE_CAM, faults=("stale:camera",)),
        Frame(S.ACTIVE),
    ],
    "implausible jump of the trajectory": [
        Frame(S.ACTIVE),
        Frame(S.FALLBACK, waypoint_offset=10.0, faults=("implausible_jump",)),
        Frame(S.RECOVERING, waypoint_offset=10.0),
        Frame(S.RECOVERING, waypoint_offset=10.0),
        Frame(S.ACTIVE, waypoint_offset=10.0),
    ],
    "two faults at once are both reported": [
        Frame(S.ACTIVE),
        Frame(S.FALLBACK, camera_age_ns=STALE_CAM, cmd=NAN, faults=("stale:camera", "nan_output")),
    ],
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_scenario(name: str) -> None:
    run(SCENARIOS[name])


def test_never_seen_topic_is_stale() -> None:
    sup = SafetySupervisor(CFG, LIMITS, REG, observed_roles=OBSERVED)
    res = sup.step(SafetyInput(now_ns=10**12, last_seen_ns={"camera": 10**12}, command=GOOD))
    assert res.faults == ("stale:odometry",) and res.state is S.INIT


def test_controlled_stop_decelerates_with_steering_held_and_limits_obeyed() -> None:
    rows = [Frame(S.ACTIVE)] * 60 + [Frame(S.FALLBACK, cmd=NAN, faults=("nan_output",))] * 60
    out = run(rows)
    active_steer = out[59][2].steering_angle
    speeds = [c.speed for _, _, c in out[60:]]
    assert all(b <= a for a, b in itertools.pairwise(speeds)), "speed never rises in a stop"
    assert speeds[-1] == 0.0 and out[-1][2].acceleration == pytest.approx(0.0, abs=LIMITS.max_jerk_mps3 * 0.1)
    assert all(c.steering_angle == pytest.approx(active_steer) for _, _, c in out[60:])
    for (_, _, a), (_, _, b) in itertools.pairwise(out):
        assert abs(b.acceleration - a.acceleration) <= LIMITS.max_jerk_mps3 * 0.1 + 1e-9
        assert abs(b.steering_angle - a.steering_angle) <= LIMITS.max_steering_rate_radps * 0.1 + 1e-9
        assert all(math.isfinite(v) for v in (b.steering_angle, b.speed, b.acceleration, b.jerk))


@pytest.mark.parametrize(
    ("cmd", "check"),
    [
        (Command(2.0, 8.0, 0.0), lambda c: c.steering_angle == pytest.approx(0.07)),  # rate limit 0.7 rad/s
        (Command(0.0, 99.0, 0.0), lambda c: c.speed == LIMITS.max_speed_mps),
        (Command(0.0, 8.0, 50.0), lambda c: c.acceleration == pytest.approx(1.0)),  # jerk 10 m/s³ * 0.1 s
        (Command(0.0, 8.0, -50.0), lambda c: c.acceleration == pytest.approx(-1.0)),
    ],
)
def test_active_commands_are_clamped_and_rate_limited(cmd: Command, check: object) -> None:
    sup = SafetySupervisor(CFG, LIMITS, REG, observed_roles=OBSERVED)
    now = 10**12
    res = sup.step(SafetyInput(now_ns=now, last_seen_ns={"camera": now, "odometry": now}, command=cmd))
    assert res.state is S.ACTIVE
    assert check(res.command), res.command  # type: ignore[operator]


def test_model_unavailable_is_a_fault() -> None:
    sup = SafetySupervisor(CFG, LIMITS, REG, observed_roles=OBSERVED)
    now = 10**12
    res = sup.step(
        SafetyInput(now_ns=now, last_seen_ns={"camera": now, "odometry": now}, command=None, model_available=False)
    )
    assert res.faults == ("model_unavailable", "no_command")
