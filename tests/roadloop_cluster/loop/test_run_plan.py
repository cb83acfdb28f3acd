"""The order of stages, and each stage a function of its own module (`loop/stages/<stage>.py`)."""

from __future__ import annotations

from dataclasses import replace

from roadloop_cluster.loop.config import DaggerConfig, InterventionConfig, LoopConfig
from roadloop_cluster.loop.run import plan


def test_two_rounds_in_order() -> None:
    names = [name for name, _, _, _ in plan(LoopConfig(rounds=2))]
    per_round = ["ship", "dataset", "train", "export", "gate", "deploy", "drive"]
    assert names == ["setup", "hub", "r1-record", *[f"r1-{s}" for s in per_round],
                     "r2-fleet", "r2-corrections", *[f"r2-{s}" for s in per_round]]  # fmt: skip
    assert [n for _, _, _, n in plan(LoopConfig(rounds=2))] == [0, 0] + [1] * 8 + [2] * 9


def test_later_rounds_add_dagger_and_may_drop_the_fleet_drive() -> None:
    cfg = LoopConfig(rounds=3, dagger=DaggerConfig(episodes=4), intervention=InterventionConfig(episodes=0))
    names = [name for name, _, _, _ in plan(cfg)]
    assert "r2-dagger" in names and "r3-dagger" in names and not any("fleet" in n for n in names)
    assert names.index("r3-dagger") < names.index("r3-ship") and names[-1] == "r3-drive"
    assert cfg.dagger.round_seed(3) == cfg.dagger.seed + 1 and cfg.dagger.round_beta(3) == 0.25


def test_every_stage_lives_in_its_own_module() -> None:
    stages = plan(replace(LoopConfig(), rounds=2))
    modules = {fn.__module__ for _, _, fn, _ in stages}
    assert all(m.startswith("roadloop_cluster.loop.stages.") for m in modules)
    by_module: dict[str, set[str]] = {}
    for _, _, fn, _ in stages:
        by_module.setdefault(fn.__module__, set()).add(fn.__name__)
    assert all(len(fns) == 1 for fns in by_module.values()), by_module
