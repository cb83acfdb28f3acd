"""Training, gate and evaluation episodes are checked disjoint on the episodes `sim record/eval` really play."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from roadloop_cluster.loop.config import (
    DaggerConfig,
    DriveConfig,
    GateConfig,
    LoopConfig,
    RecordConfig,
    load_loop_config,
)
from roadloop_cluster.loop.episodes import check_disjoint, episode_uses, played_episodes
from roadloop_cluster.loop.errors import LoopError
from roadloop_sim.scenarios import ScenarioSet, load_scenarios


@pytest.fixture
def scenarios(repo_root: Path) -> ScenarioSet:
    return load_scenarios(repo_root / "config" / "scenarios.yaml")


def test_the_repositorys_loop_yaml_keeps_its_uses_apart(repo_root: Path, scenarios: ScenarioSet) -> None:
    cfg = load_loop_config(repo_root / "config" / "loop.yaml")
    check_disjoint(cfg, scenarios)
    gate = next(u for u in episode_uses(cfg) if u.section == "gate")
    played = played_episodes(scenarios, gate)
    assert len(played) == cfg.gate.episodes >= 32  # all distinct: 32 pairs, not 16 played twice
    assert {name for name, _ in played} == {"highway_light", "highway_dense"}
    assert {seed for _, seed in played} == {*range(7000, 7008), *range(8000, 8008)}


def test_the_episodes_of_a_use_are_what_sim_plays_past_one_base_seed(scenarios: ScenarioSet) -> None:
    cfg = LoopConfig(scenarios=["highway_light"], record=RecordConfig(episodes=10, seed=3))
    record = next(u for u in episode_uses(cfg) if u.section == "record")
    assert played_episodes(scenarios, record) == {("highway_light", s) for s in (*range(3000, 3008), 4000, 4001)}


@pytest.mark.parametrize(
    ("change", "needle"),
    [
        # 10 demonstrations from base seed 7 run into 8000, 8001: the gate's second base seed
        (
            {"record": RecordConfig(episodes=10, seed=7), "gate": GateConfig(episodes=8, seed=8)},
            "record (training data, base seed 7) and gate (gate, base seed 8) play the same 2 episode(s): "
            "highway_light seed 8000, highway_light seed 8001",
        ),
        (
            {"gate": GateConfig(episodes=4, seed=21)},
            "gate (gate, base seed 21) and evaluation (evaluation, base seed 21) play the same 4 episode(s)",
        ),
        (
            {"record": RecordConfig(episodes=2, seed=11), "drive": DriveConfig(episodes=4, seed=11)},
            "record (training data, base seed 11) and drive (evaluation, base seed 11) play the same 2 episode(s)",
        ),
    ],
)
def test_an_overlap_names_both_uses_and_the_episodes(
    scenarios: ScenarioSet, change: dict[str, object], needle: str
) -> None:
    cfg = replace(LoopConfig(scenarios=["highway_light"], record=RecordConfig(episodes=4, seed=1)), **change)
    with pytest.raises(LoopError) as err:
        check_disjoint(cfg, scenarios)
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_the_same_scenario_seed_of_another_scenario_is_another_episode(scenarios: ScenarioSet) -> None:
    """highway_light seed 7000 and highway_dense seed 7000 are different episodes: no overlap."""
    cfg = LoopConfig(
        scenarios=["highway_dense"], record=RecordConfig(episodes=8, seed=7, scenarios=["highway_light"]),
        gate=GateConfig(episodes=8, seed=7),
    )  # fmt: skip
    check_disjoint(cfg, scenarios)


def test_uses_of_one_purpose_may_share_episodes(scenarios: ScenarioSet) -> None:
    """Recording the fleet's own episodes again as demonstrations is more training data, not a leak."""
    check_disjoint(
        replace(LoopConfig(scenarios=["highway_light"]), record=RecordConfig(episodes=8, seed=13)), scenarios
    )


def test_each_dagger_round_plays_episodes_of_its_own_and_never_the_gates(scenarios: ScenarioSet) -> None:
    cfg = LoopConfig(scenarios=["highway_light", "highway_dense"], rounds=3, dagger=DaggerConfig(episodes=16, seed=31))
    uses = {u.section: u for u in episode_uses(cfg)}
    r2, r3 = (played_episodes(scenarios, uses[f"dagger (round {n})"]) for n in (2, 3))
    assert len(r2) == len(r3) == 16 and not r2 & r3
    check_disjoint(cfg, scenarios)
    clash = replace(cfg, dagger=DaggerConfig(episodes=16, seed=6))  # round 3 plays base seed 7: the gate's
    with pytest.raises(LoopError, match=r"dagger \(round 3\) \(training data, base seed 7\) and gate"):
        check_disjoint(clash, scenarios)


def test_the_long_configuration_keeps_its_uses_apart(repo_root: Path, scenarios: ScenarioSet) -> None:
    cfg = load_loop_config(repo_root / "config" / "loop-full.yaml")
    assert cfg.rounds >= 3 and cfg.dagger.episodes and cfg.evaluation.run and cfg.evaluation.episodes >= 48
    check_disjoint(cfg, scenarios)
