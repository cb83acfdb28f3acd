"""The gate's refusal in words: each clause appears exactly when the numbers behind it say so."""

from __future__ import annotations

from typing import Any

import pytest

from roadloop_cluster.loop.gate_decision import GateDecision
from roadloop_cluster.loop.gate_reasons import refusal_reason
from roadloop_sim.stats import MeanCI


def _decision(low: float, high: float) -> GateDecision:
    return GateDecision(False, MeanCI((low + high) / 2, low, high, 32, 0.95, 10_000, 0), 0.0)


def _summary(name: str, **kw: Any) -> dict[str, Any]:
    return {"name": name, "ds": 90.0, "rc": 95.0, "ip": 0.96, "mean_speed": 20.0, "per_episode": [], **kw}


@pytest.mark.parametrize(
    ("cand", "inc", "present", "absent"),
    [
        # IP 0.9612 vs 0.9645 both print 0.96: "more infractions (IP 0.96 vs 0.96)" said nothing true
        ({"ip": 0.9612}, {"ip": 0.9645}, [], ["more infractions"]),
        ({"ip": 0.90}, {"ip": 0.96}, ["more infractions (IP 0.90 vs 0.96)"], []),
        ({"rc": 94.96}, {"rc": 95.04}, [], ["less of the route"]),
        ({"rc": 80.0}, {"rc": 95.0}, ["less of the route (RC 80.0 vs 95.0)"], []),
        (
            {"mean_speed": 24.0, "per_episode": [{"why": "collision_vehicle"}, {"why": ""}]},
            {"mean_speed": 20.0},
            ["1 of 2 episodes failed (collision_vehicle in 1)", "drives faster than v1 (24.0 vs 20.0 m/s mean)"],
            [],
        ),
        ({"mean_speed": 24.0, "per_episode": [{"why": "off_road"}]}, {}, ["off_road in 1"], ["drives faster"]),
    ],
)
def test_refusal_reason_clauses(
    cand: dict[str, Any], inc: dict[str, Any], present: list[str], absent: list[str]
) -> None:
    text = refusal_reason(_decision(-2.6, 12.3), _summary("v2", **cand), _summary("v1", **inc))
    assert text.startswith("paired DS difference +4.9 over 32 episodes, 95 % CI [-2.6, +12.3], margin 0.0: "
                           "not significantly better than v1")  # fmt: skip
    for clause in present:
        assert clause in text
    for clause in absent:
        assert clause not in text


def test_a_ci_below_the_margin_is_not_better_at_all() -> None:
    text = refusal_reason(_decision(-21.1, -4.5), _summary("v2"), _summary("v1"))
    assert "not better than v1" in text and "significantly" not in text
