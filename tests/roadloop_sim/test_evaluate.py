"""Closed-loop evaluation end to end: expert vs baselines, identical reports on a rerun, plots."""

from __future__ import annotations

import dataclasses
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
    path = ep["path"]  # the driven path for reports: every 0.5 s, ends where the car ended
    assert len(path["x"]) == len(path["y"]) >= ep["duration_s"] * 2
    assert abs(path["x"][-1] - path["x"][0]) > 50.0


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


class _NaNDriver:
    """Sends NaN steering for its first decisions, then a valid command."""

    name = "nan"

    def __init__(self, bad_steps: int) -> None:
        self.bad_steps = bad_steps
        self.calls = 0

    def reset(self, scenario: str, seed: int) -> None:
        self.calls = 0

    def act(self, obs: Any) -> Any:
        from roadloop_sim.sensor_messages import MessageFactory

        self.calls += 1
        steer = float("nan") if self.calls <= self.bad_steps else 0.0
        return MessageFactory().command(obs.time_ns, steer, 30.0)


def test_invalid_commands_are_infractions_replaced_by_a_stop(
    short_scenarios: ScenarioSet, registry: TopicRegistry
) -> None:
    from roadloop_sim.episode import run_episode
    from roadloop_sim.highway import HighwayEnvSimulator
    from roadloop_sim.metrics import episode_metrics

    sc = dataclasses.replace(short_scenarios.get("highway_light"), max_duration_s=3.0)
    sset = dataclasses.replace(short_scenarios, scenarios={"highway_light": sc})
    sim = HighwayEnvSimulator(sset, registry)
    log = run_episode(
        sim, _NaNDriver(10), "highway_light", 0, registry=registry, cfg=sset.simulation, driver_label="nan"
    )
    sim.close()
    m = episode_metrics(log)
    assert m["infractions"]["invalid_command"] == 10
    assert m["infraction_penalty"] == pytest.approx(0.7**10)
    speeds = [s.speed for s in log.samples]
    assert speeds[20] < speeds[0] - 5.0  # braking towards the stop the guard substituted
    assert speeds[-1] > speeds[20]  # valid commands (30 m/s) accelerate again
