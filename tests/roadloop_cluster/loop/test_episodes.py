"""Which episodes a sim run plays: the loop splits longer counts into runs with the next base seed."""

from __future__ import annotations

from pathlib import Path

import pytest

from roadloop_cluster.loop.config import GateConfig, LoopConfig
from roadloop_cluster.loop.episodes import base_seed_runs, check_episode_counts, distinct_episodes
from roadloop_cluster.loop.errors import LoopError
from roadloop_sim.scenarios import load_scenarios


@pytest.mark.parametrize(
    ("episodes", "seed", "cap", "runs"),
    [
        (20, 1, 8, [(1, 8), (2, 8), (3, 4)]),
        (8, 7, 8, [(7, 8)]),
        (3, 5, 16, [(5, 3)]),
        (32, 7, 16, [(7, 16), (8, 16)]),
    ],
)
def test_base_seed_runs(episodes: int, seed: int, cap: int, runs: list[tuple[int, int]]) -> None:
    assert base_seed_runs(episodes, seed, cap) == runs


def test_distinct_episodes_are_scenarios_times_their_seeds(repo_root: Path) -> None:
    scenarios = load_scenarios(repo_root / "config" / "scenarios.yaml")
    assert distinct_episodes(scenarios, ["highway_light"]) == 8
    assert distinct_episodes(scenarios, ["highway_light", "highway_dense"]) == 16


def test_an_evaluation_that_would_repeat_episodes_is_refused(repo_root: Path) -> None:
    scenarios = load_scenarios(repo_root / "config" / "scenarios.yaml")
    check_episode_counts(LoopConfig(scenarios=["highway_light"], gate=GateConfig(episodes=8)), scenarios)
    with pytest.raises(LoopError, match=r"gate.episodes=9: only 8 distinct episodes exist for scenarios highway_light"):
        check_episode_counts(LoopConfig(scenarios=["highway_light"], gate=GateConfig(episodes=9)), scenarios)
