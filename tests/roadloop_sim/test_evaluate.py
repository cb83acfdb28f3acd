"""Closed-loop evaluation end to end: expert vs baselines, identical reports on a rerun, plots."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from roadloop_core.registry import TopicRegistry
from roadloop_sim.evaluate import evaluate, write_report
from roadloop_sim.scenarios import ScenarioSet


@pytest.fixture(scope="module")
def reports(
    short_scenarios: ScenarioSet, registry: TopicRegistry, tmp_path_factory: pytest.TempPathFactory
) -> dict[str, Any]:
    plots = tmp_path_factory.mktemp("plots")
    out = {}
    for driver in ("expert", "constant"):
        out[driver] = evaluate(
            driver,
            scenarios="highway_dense,racetrack",
            episodes=2,
            seed=1,
            plots=plots if driver == "expert" else None,
            scenario_set=short_scenarios,
            registry=registry,
            progress=False,
        )
    out["plots"] = plots
    return out


def test_expert_scores_full_marks_and_beats_the_baseline(reports: dict[str, Any]) -> None:
    expert, constant = reports["expert"]["summary"], reports["constant"]["summary"]
    assert expert["driving_score"] == pytest.approx(100.0)
    assert expert["success_rate"] == 1.0
    assert constant["driving_score"] < expert["driving_score"] - 30.0
    assert sum(constant["infractions"].values()) >= 2  # rear-ends traffic, leaves the curved track
    assert set(expert["driving_score_by_scenario"]) == {"highway_dense", "racetrack"}


def test_report_layout(reports: dict[str, Any]) -> None:
    r = reports["expert"]
    assert r["format"] == "roadloop-sim-eval/1" and r["driver"] == "expert" and r["seed"] == 1
    ep = r["episodes"][0]
    for key in (
        "route_completion",
        "infraction_penalty",
        "driving_score",
        "success",
        "infractions",
        "infractions_per_km",
        "mean_speed",
        "comfort",
    ):
        assert key in ep
    assert 0.0 <= ep["comfort"] <= 1.0 and ep["mean_speed"] > 3.0


def test_rerun_gives_an_identical_json(
    reports: dict[str, Any], short_scenarios: ScenarioSet, registry: TopicRegistry, tmp_path: Path
) -> None:
    again = evaluate(
        "expert",
        scenarios="highway_dense,racetrack",
        episodes=2,
        seed=1,
        scenario_set=short_scenarios,
        registry=registry,
        progress=False,
    )
    write_report(reports["expert"], tmp_path / "a.json")
    write_report(again, tmp_path / "b.json")
    assert (tmp_path / "a.json").read_bytes() == (tmp_path / "b.json").read_bytes()
    assert json.loads((tmp_path / "a.json").read_text())["summary"]["episodes"] == 2


def test_plots_are_written(reports: dict[str, Any]) -> None:
    pngs = sorted(p.name for p in Path(reports["plots"]).glob("*.png"))
    assert pngs == ["000_highway_dense_s1000.png", "001_racetrack_s1000.png", "summary.png"]
    for p in Path(reports["plots"]).glob("*.png"):
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.stat().st_size > 5000
