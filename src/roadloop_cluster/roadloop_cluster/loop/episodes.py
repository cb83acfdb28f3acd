"""Which episodes a `roadloop sim record/eval` run plays, and how a longer count is split into runs.

One run with base seed S plays scenarios round-robin with seeds S*1000 + each scenario's standard
seeds (`roadloop_sim.scenarios.episode_plan`): after scenarios x seeds episodes it repeats. More
distinct episodes come from further runs with the next base seed.
"""

from __future__ import annotations

from roadloop_cluster.loop.config import LoopConfig
from roadloop_cluster.loop.errors import LoopError
from roadloop_sim.scenarios import ScenarioSet

__all__ = ["base_seed_runs", "check_episode_counts", "distinct_episodes"]


def distinct_episodes(scenarios: ScenarioSet, names: list[str]) -> int:
    """How many episodes one `sim eval/record` run plays before repeating one: scenarios x their seeds."""
    selected = scenarios.select(names)
    return len(selected) * min(len(sc.seeds) for sc in selected)


def base_seed_runs(episodes: int, seed: int, cap: int) -> list[tuple[int, int]]:
    """(base seed, episodes) of each run that together play `episodes` distinct episodes, `cap` per run."""
    runs = []
    left = episodes
    while left > 0:
        runs.append((seed, min(left, cap)))
        left, seed = left - cap, seed + 1
    return runs


def check_episode_counts(cfg: LoopConfig, scenarios: ScenarioSet) -> None:
    """An evaluation longer than the distinct episodes would count some episodes twice: refuse it."""
    cap = distinct_episodes(scenarios, cfg.scenarios)
    for what, episodes in (
        ("gate.episodes", cfg.gate.episodes),
        ("drive.episodes", cfg.drive.episodes),
        ("intervention.episodes", cfg.intervention.episodes),
    ):
        if episodes > cap:
            raise LoopError(
                f"loop config {what}={episodes}: only {cap} distinct episodes exist for scenarios "
                f"{','.join(cfg.scenarios)} (scenarios x seeds in scenarios.yaml); more would repeat episodes"
            )
