"""Closed-loop metrics: CARLA Leaderboard 2.0 definitions mapped onto the simulator (pure numpy).

Per episode:
- RC (route completion, %) = 100 * progress along the route / route length;
- IP (infraction penalty) = 0.60^vehicle collisions * 0.65^static collisions
  * 0.70^invalid commands * (1 - off-road fraction of the distance driven);
- DS (driving score) = RC * IP; the run's DS is the mean over episodes (0-100);
- success = route completed with no collision, no invalid command and nothing driven off-road;
- infractions per km (of route completed), mean speed (distance / time);
- comfort (as Bench2Drive, nuPlan limits): the share of 2-second windows in which every sample
  keeps lon accel in [-4.05, 2.40] m/s^2, |lat accel| <= 4.89 m/s^2, |lon jerk| <= 4.13 m/s^3,
  |yaw rate| <= 0.95 rad/s and |yaw accel| <= 1.93 rad/s^2 (signals smoothed over 0.25 s first).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from roadloop_sim.episode import EpisodeLog

__all__ = ["PENALTY", "ComfortLimits", "aggregate", "comfort_score", "episode_metrics"]

PENALTY = {"collision_vehicle": 0.60, "collision_static": 0.65, "invalid_command": 0.70}
INFRACTION_KINDS = ("collision_vehicle", "collision_static", "off_road", "invalid_command")


@dataclass(frozen=True)
class ComfortLimits:
    accel_lon_min: float = -4.05
    accel_lon_max: float = 2.40
    accel_lat_abs: float = 4.89
    jerk_lon_abs: float = 4.13
    yaw_rate_abs: float = 0.95
    yaw_accel_abs: float = 1.93
    window_s: float = 2.0
    smooth_s: float = 0.25


def _smooth(x: np.ndarray, n: int) -> np.ndarray:
    if n <= 1 or len(x) < n:
        return x
    pad = np.pad(x, (n // 2, n - 1 - n // 2), mode="edge")
    return np.convolve(pad, np.ones(n) / n, mode="valid")


def comfort_score(
    t: np.ndarray, accel_lon: np.ndarray, accel_lat: np.ndarray, yaw_rate: np.ndarray, limits: ComfortLimits
) -> float:
    """Share (0-1) of consecutive `window_s` windows whose samples are all within the limits."""
    if len(t) < 3:
        return 1.0
    dt = float(np.median(np.diff(t)))
    n = max(1, round(limits.smooth_s / dt))
    a_lon, a_lat, w = _smooth(accel_lon, n), _smooth(accel_lat, n), _smooth(yaw_rate, n)
    jerk = np.gradient(a_lon, t)
    yaw_acc = np.gradient(w, t)
    ok = (
        (a_lon >= limits.accel_lon_min)
        & (a_lon <= limits.accel_lon_max)
        & (np.abs(a_lat) <= limits.accel_lat_abs)
        & (np.abs(jerk) <= limits.jerk_lon_abs)
        & (np.abs(w) <= limits.yaw_rate_abs)
        & (np.abs(yaw_acc) <= limits.yaw_accel_abs)
    )
    window = np.floor((t - t[0]) / limits.window_s).astype(int)
    windows = np.unique(window)
    good = sum(bool(ok[window == k].all()) for k in windows)
    return good / len(windows)


def episode_metrics(log: EpisodeLog, limits: ComfortLimits | None = None) -> dict[str, Any]:
    limits = limits or ComfortLimits()
    rc = 100.0 * min(1.0, log.progress_m / log.route_length_m) if log.route_length_m > 0 else 0.0
    counts = {k: sum(1 for i in log.infractions if i.kind == k) for k in INFRACTION_KINDS}
    distance, off = log.distances()
    off_fraction = off / distance if distance > 0 else 0.0
    ip = 1.0 - off_fraction
    for kind, coef in PENALTY.items():
        ip *= coef ** counts[kind]
    samples = log.samples[1:]  # the reset sample carries no motion yet
    t = np.array([s.t for s in samples])
    comfort = comfort_score(
        t,
        np.array([s.accel_lon for s in samples]),
        np.array([s.accel_lat for s in samples]),
        np.array([s.yaw_rate for s in samples]),
        limits,
    )
    km = log.progress_m / 1000.0
    total = sum(counts.values())
    first = min((i.t for i in log.infractions), default=None)
    success = rc >= 100.0 - 1e-9 and total == 0 and off_fraction == 0.0
    failure_t = None if success else (first if first is not None else log.duration_s)
    return {
        "scenario": log.scenario,
        "seed": log.seed,
        "driver": log.driver,
        "route_completion": rc,
        "infraction_penalty": ip,
        "driving_score": rc * ip,
        "success": success,
        "end_reason": log.reason,
        "infractions": counts,
        "off_road_fraction": off_fraction,
        "infractions_per_km": total / km if km > 0 else (float(total) if total else 0.0),
        "route_length_m": log.route_length_m,
        "distance_m": distance,
        "duration_s": log.duration_s,
        "mean_speed": distance / log.duration_s if log.duration_s > 0 else 0.0,
        "comfort": comfort,
        "first_infraction_s": first,
        "failure_time_s": failure_t,
    }


def aggregate(episodes: list[dict[str, Any]]) -> dict[str, Any]:
    """Run-level figures: means over episodes, infractions per km over the total route completed."""
    n = len(episodes)
    if n == 0:
        return {"episodes": 0}
    km = sum(e["route_length_m"] * e["route_completion"] / 100.0 for e in episodes) / 1000.0
    counts = {k: sum(e["infractions"][k] for e in episodes) for k in INFRACTION_KINDS}
    total = sum(counts.values())
    by_scenario: dict[str, list[float]] = {}
    for e in episodes:
        by_scenario.setdefault(e["scenario"], []).append(e["driving_score"])

    def mean(key: str) -> float:
        return float(sum(float(e[key]) for e in episodes) / n)

    return {
        "episodes": n,
        "driving_score": mean("driving_score"),
        "route_completion": mean("route_completion"),
        "infraction_penalty": mean("infraction_penalty"),
        "success_rate": sum(1 for e in episodes if e["success"]) / n,
        "infractions": counts,
        "infractions_per_km": total / km if km > 0 else float(total),
        "mean_speed": mean("mean_speed"),
        "comfort": mean("comfort"),
        "driving_score_by_scenario": {k: sum(v) / len(v) for k, v in by_scenario.items()},
    }
