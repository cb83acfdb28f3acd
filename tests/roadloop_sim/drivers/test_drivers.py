"""Drivers: the resolver, the baselines on messages only, the expert on privileged state (real sim)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from roadloop_core.registry import TopicRegistry
from roadloop_sim.drivers import ConstantDriver, ExpertDriver, LaneKeepDriver, make_driver
from roadloop_sim.episode import run_episode
from roadloop_sim.errors import DriverError
from roadloop_sim.highway import HighwayEnvSimulator
from roadloop_sim.metrics import episode_metrics
from roadloop_sim.protocol import Driver
from roadloop_sim.scenarios import ScenarioSet


@pytest.mark.parametrize(
    ("spec", "cls"), [("expert", ExpertDriver), ("constant", ConstantDriver), ("lanekeep", LaneKeepDriver)]
)
def test_make_driver(spec: str, cls: type, registry: TopicRegistry) -> None:
    d = make_driver(spec, registry)
    assert isinstance(d, cls) and isinstance(d, Driver)


@pytest.mark.parametrize("spec", ["pilot", "expert:x", "bundle:", ""])
def test_bad_driver_spec(spec: str, registry: TopicRegistry) -> None:
    with pytest.raises(DriverError, match="driver"):
        make_driver(spec, registry)


def test_unknown_driver_lists_valid_ones(registry: TopicRegistry) -> None:
    with pytest.raises(DriverError, match=r"valid: expert, constant, lanekeep, bundle:PATH"):
        make_driver("pilot", registry)


def test_bundle_driver_missing_folder(tmp_path: Path, registry: TopicRegistry) -> None:
    with pytest.raises(DriverError, match="no such bundle folder"):
        make_driver(f"bundle:{tmp_path / 'nope'}", registry)


def test_bundle_driver_without_vehicle_parameters_is_one_clear_error(tmp_path: Path, registry: TopicRegistry) -> None:
    with pytest.raises(DriverError, match=r"needs the vehicle parameters"):
        make_driver(f"bundle:{tmp_path}", registry)


def test_bundle_driver_module_missing_is_one_clear_error(
    tmp_path: Path, registry: TopicRegistry, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A vehicle-less install (no roadloop_sim.drivers.bundle importable) still gets a one-line error."""
    monkeypatch.setitem(sys.modules, "roadloop_sim.drivers.bundle", None)  # import now fails as if absent
    with pytest.raises(DriverError, match=r"roadloop_sim\.drivers\.bundle is not available"):
        make_driver(f"bundle:{tmp_path}", registry)


@pytest.fixture(scope="module")
def sim(short_scenarios: ScenarioSet, registry: TopicRegistry) -> HighwayEnvSimulator:
    return HighwayEnvSimulator(short_scenarios, registry)


@pytest.mark.parametrize("scenario", ["highway_dense", "racetrack", "uturn"])
def test_expert_finishes_without_infractions(sim: HighwayEnvSimulator, registry: TopicRegistry, scenario: str) -> None:
    log = run_episode(sim, ExpertDriver(), scenario, 1001, registry=registry, cfg=sim.cfg, driver_label="expert")
    m = episode_metrics(log)
    assert log.reason == "route_complete", m
    assert m["success"] and m["driving_score"] == pytest.approx(100.0)


def test_lanekeep_follows_the_curved_track_from_messages(sim: HighwayEnvSimulator, registry: TopicRegistry) -> None:
    """No privileged state: pure pursuit on /planning/route keeps it on the racetrack; constant leaves it."""
    lk = episode_metrics(
        run_episode(sim, LaneKeepDriver(registry), "racetrack", 1002, registry=registry, cfg=sim.cfg, driver_label="lk")
    )
    const = episode_metrics(
        run_episode(sim, ConstantDriver(registry), "racetrack", 1002, registry=registry, cfg=sim.cfg, driver_label="c")
    )
    assert lk["infractions"]["off_road"] == 0 and lk["route_completion"] > 50.0
    assert const["infractions"]["off_road"] >= 1
    assert const["driving_score"] < lk["driving_score"]
