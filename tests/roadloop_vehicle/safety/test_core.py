"""SafetyCore's watchdog: one decision per slot at the slot's own time, whenever in the slot it is asked."""

from __future__ import annotations

import numpy as np

from roadloop_core.config import config_dir
from roadloop_core.registry import load_registry
from roadloop_vehicle.control import Command
from roadloop_vehicle.params import load_vehicle_params
from roadloop_vehicle.safety import SafetyCore

REG = load_registry(config_dir() / "topics.yaml")
S = load_vehicle_params(config_dir() / "vehicle.yaml").safety
T0 = 1_700_000_000_000_000_000
P = 100_000_000  # command_raw at 10 Hz: the tick period


def core() -> SafetyCore:
    return SafetyCore(S.safety, S.vehicle_limits, REG, S.diagnostics_period_s, observed_roles=["camera"])


def stops(asked_at: list[int]) -> list[tuple[int, float]]:
    """(decision time, commanded speed) of the watchdog asked at these times after a last frame at T0."""
    c = core()
    c.start(T0 - P)
    c.on_command(T0, {"camera": T0}, Command(0.0, 8.0, 0.0), np.zeros((2, 2), np.float32), 8.0)
    out = []
    for t in asked_at:
        d = c.tick(t, {"camera": T0})
        if d is not None:
            assert c.decided_at_ns is not None
            out.append((c.decided_at_ns, d.command.speed))
    return out


def test_decisions_sit_on_the_slot_grid_whatever_the_call_times() -> None:
    """A node's timer (twice per period, jittered) and a replay (every 20 ms message) stop the car identically."""
    timer = [T0 + k * P // 2 + (k * 7_919_000) % 30_000_000 for k in range(40)]
    messages = [T0 + k * 20_000_000 for k in range(100)]
    a, b = stops(timer), stops(messages)
    common = min(a[-1][0], b[-1][0])
    a, b = [d for d in a if d[0] <= common], [d for d in b if d[0] <= common]
    assert a == b and len(a) >= 10
    times = [t for t, _ in a]
    assert all((t - P // 2) % P == 0 for t in times)  # half a period off the camera's 10 Hz grid
    assert np.all(np.diff(times) == P)  # one per slot, none dropped
    assert times[0] - T0 > int(REG["command_raw"].stale_after_s(REG.stale_factor) * 1e9)  # only once overdue
    speeds = [v for _, v in a]
    assert speeds == sorted(speeds, reverse=True) and speeds[0] < 8.0  # the ramp, by slot time


def test_frames_are_judged_at_their_stamp_unless_it_is_far_from_arrival() -> None:
    c = core()
    now = T0 + 3_000_000
    assert c.frame_time(T0, now) == T0  # the stamp: time steps are those between frames
    assert c.frame_time(T0, now, offset_ns=5_000) == T0 + 5_000  # on the staleness clock
    assert c.frame_time(T0 - 10 * 10**9, now) == now  # a stepped clock or a stuck stamp: its arrival
    assert c.frame_time(T0 + 10**9, now) == now
