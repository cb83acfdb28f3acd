from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from roadloop_core.config import config_dir
from roadloop_core.errors import ConfigError
from roadloop_sim.errors import ScenarioError
from roadloop_sim.scenarios import episode_plan, load_scenarios

STANDARD = ["highway_light", "highway_dense", "racetrack", "uturn"]


def test_standard_set_loads_with_seeds() -> None:
    s = load_scenarios(config_dir() / "scenarios.yaml")
    assert list(s.scenarios) == STANDARD
    assert all(sc.seeds for sc in s.scenarios.values())
    assert s.simulation.policy_rate_hz == 10
    assert s.simulation.substeps == s.simulation.sim_rate_hz // 10


def test_unknown_scenario_lists_valid_ones() -> None:
    with pytest.raises(ScenarioError, match="unknown scenario 'merge'; valid: highway_light, highway_dense"):
        load_scenarios(config_dir() / "scenarios.yaml").select("highway_light,merge")


@pytest.mark.parametrize(
    ("names", "episodes", "seed", "expected"),
    [
        ("highway_light", 3, 0, [("highway_light", 0), ("highway_light", 1), ("highway_light", 2)]),
        ("racetrack,uturn", 4, 1, [("racetrack", 1000), ("uturn", 1000), ("racetrack", 1001), ("uturn", 1001)]),
        # past a scenario's 8 standard seeds the next base seed's follow: nothing repeats
        ("highway_light", 10, 3, [("highway_light", s) for s in (*range(3000, 3008), 4000, 4001)]),
        (
            "highway_light,highway_dense",
            17,
            7,
            [(sc, 7000 + i) for i in range(8) for sc in ("highway_light", "highway_dense")] + [("highway_light", 8000)],
        ),
        (
            "all",
            5,
            2,
            [
                ("highway_light", 2000),
                ("highway_dense", 2000),
                ("racetrack", 2000),
                ("uturn", 2000),
                ("highway_light", 2001),
            ],
        ),
    ],
)
def test_episode_plan(names: str, episodes: int, seed: int, expected: list[tuple[str, int]]) -> None:
    plan = episode_plan(load_scenarios(config_dir() / "scenarios.yaml").select(names), episodes, seed)
    assert [(sc.name, s) for sc, s in plan] == expected


def _write(tmp_path: Path, mutate: dict[str, object], scenario_patch: dict[str, object] | None = None) -> Path:
    data = yaml.safe_load((config_dir() / "scenarios.yaml").read_text())
    data["simulation"].update(mutate)
    if scenario_patch:
        data["scenarios"]["racetrack"].update(scenario_patch)
    p = tmp_path / "scenarios.yaml"
    p.write_text(yaml.safe_dump(data))
    return p


@pytest.mark.parametrize(
    ("sim_patch", "scenario_patch", "error", "match"),
    [
        ({"policy_rate_hz": 7}, None, ConfigError, "must divide sim_rate_hz"),
        ({"sim_rate_hz": "fast"}, None, ConfigError, "simulation.sim_rate_hz: expected an integer"),
        ({"camera_fps": 3}, None, ConfigError, "unknown parameter"),
        ({}, {"env": "merge-v0"}, ScenarioError, "scenarios.racetrack.env: 'merge-v0' is not supported"),
        ({}, {"seeds": []}, ScenarioError, "racetrack.seeds: needs at least one seed"),
        ({}, {"route_length_m": -1.0}, ScenarioError, "must be > 0"),
    ],
)
def test_bad_config_names_the_field(
    tmp_path: Path, sim_patch: dict[str, object], scenario_patch: dict[str, object] | None, error: type, match: str
) -> None:
    with pytest.raises(error, match=match):
        load_scenarios(_write(tmp_path, sim_patch, scenario_patch))
