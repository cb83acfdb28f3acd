"""Stage `evaluate` (with `evaluation.run: true`): the loop's final model on the held-out evaluation episodes.

The installed model (else the last candidate, in shadow mode), the expert and the two baselines
(`lanekeep`, `constant`) drive the same `evaluation.episodes` episodes, never trained or gated on.
Recorded: the model's DS as a share of the expert's (paired bootstrap CI), its DS gain over each
baseline (paired bootstrap CI, as the gate computes it) and its collision rate.
"""

from __future__ import annotations

from typing import Any

from roadloop_cluster.loop.context import StageContext
from roadloop_cluster.loop.gate_decision import decide
from roadloop_cluster.loop.stage_runner import StageOutcome
from roadloop_cluster.loop.stages.drive import driving_bundle
from roadloop_cluster.loop.stages.sim_eval import sim_eval, without_episodes
from roadloop_sim.stats import bootstrap_ratio_ci

__all__ = ["BASELINES", "evaluate"]

BASELINES = ("lanekeep", "constant")


def evaluate(ctx: StageContext, n: int) -> StageOutcome:
    ev, g = ctx.cfg.evaluation, ctx.cfg.gate
    edir = ctx.layout.out / "evaluation"
    edir.mkdir(parents=True, exist_ok=True)
    bundle, name = driving_bundle(ctx, n)
    runs = {
        who: sim_eval(ctx, driver, ev.seed, ev.episodes, edir / f"{who}.json", label)
        for who, driver, label in (("model", f"bundle:{bundle}", name), ("expert", "expert", "expert"),
                                   *((b, b, b) for b in BASELINES))
    }  # fmt: skip
    ds = {who: {(e["scenario"], e["seed"]): float(e["ds"]) for e in r["per_episode"]} for who, r in runs.items()}
    keys = sorted(ds["model"])
    ratio = bootstrap_ratio_ci([ds["model"][k] for k in keys], [ds["expert"][k] for k in keys],
                               confidence=g.confidence, resamples=g.resamples, seed=g.bootstrap_seed)  # fmt: skip
    gains = {
        f"gain_over_{b}": decide(runs["model"]["per_episode"], runs[b]["per_episode"], 0.0, confidence=g.confidence,
                                 resamples=g.resamples, seed=g.bootstrap_seed).difference.to_dict()
        for b in BASELINES
    }  # fmt: skip
    collided = sum(1 for e in runs["model"]["per_episode"] if e.get("collisions"))
    summary: dict[str, Any] = {
        "model": name, "episodes": len(keys), "seed": ev.seed,
        "ratio_to_expert": ratio.to_dict(), **gains,
        "collision_rate": collided / max(1, len(keys)),
        **{who: without_episodes(r) for who, r in runs.items()},
    }  # fmt: skip
    ctx.state.summary["evaluation"] = summary
    return StageOutcome(
        {"model": name, "ds": runs["model"]["ds"], "expert_ds": runs["expert"]["ds"], "ratio": ratio.mean,
         "ratio_low": ratio.low, "collision_rate": summary["collision_rate"],
         **{f"{b}_ds": runs[b]["ds"] for b in BASELINES}},
        {"evaluation": ctx.layout.rel(edir)},
    )  # fmt: skip
