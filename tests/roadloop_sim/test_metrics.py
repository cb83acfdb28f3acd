"""Table-driven checks of the Leaderboard-style metrics on synthetic episodes."""

from __future__ import annotations

import numpy as np
import pytest

from roadloop_sim.episode import EpisodeLog, Infraction
from roadloop_sim.metrics import ComfortLimits, aggregate, comfort_score, episode_metrics
from roadloop_sim.protocol import EgoSample


def _log(
    progress: float, infractions: list[str], off_road_from: float | None = None, speed: float = 10.0, dt: float = 0.05
) -> EpisodeLog:
    """A straight drive at constant speed; off-road from x >= off_road_from."""
    n = int(progress / speed / dt) + 1
    samples = [
        EgoSample(
            i * dt,
            i * dt * speed,
            0.0,
            0.0,
            speed,
            0.0,
            0.0,
            0.0,
            off_road_from is not None and i * dt * speed >= off_road_from,
        )
        for i in range(n)
    ]
    log = EpisodeLog("s", 1, "d", samples=samples, progress_m=progress, route_length_m=100.0, reason="x")
    log.infractions = [Infraction(k, 1.0, 0.0, 0.0) for k in infractions]
    return log


@pytest.mark.parametrize(
    ("progress", "infractions", "off_from", "rc", "ip", "success"),
    [
        (100.0, [], None, 100.0, 1.0, True),
        (50.0, [], None, 50.0, 1.0, False),
        (100.0, ["collision_vehicle"], None, 100.0, 0.60, False),
        (100.0, ["collision_vehicle", "collision_vehicle", "collision_static"], None, 100.0, 0.60 * 0.60 * 0.65, False),
        (100.0, ["invalid_command"], None, 100.0, 0.70, False),
        (100.0, ["off_road"], 75.0, 100.0, 0.75, False),  # a quarter of the distance off-road
        (40.0, ["collision_static", "off_road"], 20.0, 40.0, 0.65 * 0.5, False),
    ],
)
def test_episode_metrics(
    progress: float, infractions: list[str], off_from: float | None, rc: float, ip: float, success: bool
) -> None:
    m = episode_metrics(_log(progress, infractions, off_from))
    assert m["route_completion"] == pytest.approx(rc)
    assert m["infraction_penalty"] == pytest.approx(ip, abs=0.02)
    assert m["driving_score"] == pytest.approx(rc * m["infraction_penalty"])
    assert m["success"] is success
    assert m["mean_speed"] == pytest.approx(10.0)
    assert m["infractions_per_km"] == pytest.approx(len(infractions) / (progress / 1000.0))
    assert (m["failure_time_s"] is None) == success


def test_aggregate_means_and_per_km() -> None:
    eps = [episode_metrics(_log(100.0, [])), episode_metrics(_log(50.0, ["collision_vehicle"]))]
    agg = aggregate(eps)
    assert agg["driving_score"] == pytest.approx((100.0 + 30.0) / 2)
    assert agg["success_rate"] == 0.5
    assert agg["infractions_per_km"] == pytest.approx(1 / 0.15)
    assert agg["infractions"]["collision_vehicle"] == 1
    assert aggregate([]) == {"episodes": 0}


def _comfort(a_lon: np.ndarray, yaw_rate: float = 0.0) -> float:
    t = np.arange(len(a_lon)) * 0.05
    return comfort_score(t, a_lon, np.zeros_like(a_lon), np.full_like(a_lon, yaw_rate), ComfortLimits())


@pytest.mark.parametrize(
    ("signal", "yaw_rate", "expected"),
    [
        (np.zeros(200), 0.0, 1.0),  # 10 s smooth: 5 good windows
        (np.full(200, -5.0), 0.0, 0.0),  # braking harder than 4.05 m/s^2 throughout
        (np.concatenate([np.zeros(120), np.full(80, 3.0)]), 0.0, 2 / 5),  # windows 3.. accelerate too hard; 2 jerks
        (np.zeros(200), 1.2, 0.0),  # yaw rate above 0.95 rad/s
    ],
)
def test_comfort_windows(signal: np.ndarray, yaw_rate: float, expected: float) -> None:
    assert _comfort(signal, yaw_rate) == pytest.approx(expected)
