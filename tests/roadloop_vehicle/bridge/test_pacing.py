"""The bandwidth cap wired to a clock: no cap is no pacer; a cap sleeps as the token bucket says."""

from __future__ import annotations

from roadloop_vehicle.bridge.pacing import bandwidth_pacer


def test_no_cap_means_no_pacing() -> None:
    assert bandwidth_pacer(0.0) is None and bandwidth_pacer(-1.0) is None


def test_a_cap_sleeps_for_what_exceeds_the_burst() -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += s

    pace = bandwidth_pacer(100_000.0, clock=lambda: now[0], sleep=sleep)
    assert pace is not None
    for _ in range(10):  # 10 x 16 KiB = 163840 B at 100 kB/s with a 64 KiB burst
        pace(16384)
    assert slept and abs(now[0] - (163840 - 65536) / 100_000.0) < 1e-9  # paced to the rate after the burst
