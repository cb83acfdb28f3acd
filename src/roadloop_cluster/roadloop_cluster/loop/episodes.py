"""Which episodes each use of the simulator plays, and the check that training, gate and evaluation never
share one.

A `sim record/eval` run with base seed S plays its scenarios round-robin with env seeds S*1000 + each
scenario's standard seeds, then (S+1)*1000 + ..., and so on (`roadloop_sim.scenarios.episode_plan`).
An episode is a (scenario, env seed) pair. Episodes the model learnt from (demonstrations, the fleet
drives whose failures the expert corrects) must not be the ones it is gated or evaluated on, or the gate
would reward memorising them; the gate's episodes must not be the final evaluation's, or the model
chosen on them would be scored on them again.
"""

from __future__ import annotations

from dataclasses import dataclass

from roadloop_cluster.loop.config import LoopConfig
from roadloop_cluster.loop.errors import LoopError
from roadloop_sim.scenarios import ScenarioSet, episode_plan

__all__ = ["EpisodeUse", "check_disjoint", "episode_uses", "played_episodes"]

TRAINING, GATE, EVALUATION = "training data", "gate", "evaluation"


@dataclass(frozen=True)
class EpisodeUse:
    """One configured use of the simulator: `loop.yaml`'s section, what it is for, what it plays."""

    section: str
    purpose: str  # TRAINING | GATE | EVALUATION
    scenarios: tuple[str, ...]
    episodes: int
    seed: int


def episode_uses(cfg: LoopConfig) -> list[EpisodeUse]:
    """Every section of loop.yaml that makes the simulator play episodes (a new data stage adds a row)."""
    loop = tuple(cfg.scenarios)
    return [
        EpisodeUse("record", TRAINING, tuple(cfg.record.scenarios) or loop, cfg.record.episodes, cfg.record.seed),
        EpisodeUse("intervention", TRAINING, loop, cfg.intervention.episodes, cfg.intervention.seed),
        *(
            EpisodeUse(f"dagger (round {n})", TRAINING, loop, cfg.dagger.episodes, cfg.dagger.round_seed(n))
            for n in range(2, cfg.rounds + 1)
            if cfg.dagger.episodes
        ),
        EpisodeUse("gate", GATE, loop, cfg.gate.episodes, cfg.gate.seed),
        EpisodeUse("drive", EVALUATION, loop, cfg.drive.episodes, cfg.drive.seed),
        EpisodeUse("evaluation", EVALUATION, loop, cfg.evaluation.episodes, cfg.evaluation.seed),
    ]


def played_episodes(scenarios: ScenarioSet, use: EpisodeUse) -> set[tuple[str, int]]:
    """The (scenario, env seed) episodes `use` plays, exactly as `roadloop sim record/eval` derives them."""
    return {(sc.name, seed) for sc, seed in episode_plan(scenarios.select(list(use.scenarios)), use.episodes, use.seed)}


def check_disjoint(cfg: LoopConfig, scenarios: ScenarioSet) -> None:
    """Refuse a config in which episodes of two different purposes coincide, naming both uses and the episodes."""
    uses = episode_uses(cfg)
    played = {u.section: played_episodes(scenarios, u) for u in uses if u.episodes}
    for i, a in enumerate(uses):
        for b in uses[i + 1 :]:
            if not (a.episodes and b.episodes):
                continue
            shared = played[a.section] & played[b.section] if a.purpose != b.purpose else set()
            if shared:
                listed = ", ".join(f"{name} seed {seed}" for name, seed in sorted(shared)[:4])
                more = f" and {len(shared) - 4} more" if len(shared) > 4 else ""
                raise LoopError(
                    f"loop config: {a.section} ({a.purpose}, base seed {a.seed}) and {b.section} ({b.purpose}, "
                    f"base seed {b.seed}) play the same {len(shared)} episode(s): {listed}{more}; training, gate "
                    "and evaluation episodes must be disjoint (base seed S plays env seeds S*1000 + the scenarios' "
                    "seeds, then (S+1)*1000 + ...: give each use base seeds of its own)"
                )
