"""Fixtures of the simulation tests: a scenario set with short routes keeps every test cheap."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from roadloop_core.config import config_dir
from roadloop_core.registry import TopicRegistry, load_registry
from roadloop_sim.scenarios import ScenarioSet, load_scenarios

SHORT_ROUTE_M = {"highway_light": 120.0, "highway_dense": 120.0, "racetrack": 70.0, "uturn": 70.0}


@pytest.fixture(scope="session")
def short_scenarios_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """config/scenarios.yaml with the standard scenarios, their routes cut short."""
    data = yaml.safe_load((config_dir() / "scenarios.yaml").read_text())
    for name, body in data["scenarios"].items():
        body["route_length_m"] = SHORT_ROUTE_M.get(name, 80.0)
        body["max_duration_s"] = 20.0
    path = tmp_path_factory.mktemp("scenarios") / "scenarios.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    return path


@pytest.fixture(scope="session")
def short_scenarios(short_scenarios_file: Path) -> ScenarioSet:
    return load_scenarios(short_scenarios_file)


@pytest.fixture(scope="session")
def registry() -> TopicRegistry:
    return load_registry(config_dir() / "topics.yaml")
