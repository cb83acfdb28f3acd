"""Stage `rN-gate`: candidate vs the production model (round 1: the baseline) on the same paired episodes.

The candidate always goes to the `candidate` channel; to `production` only if it is significantly
better: the lower bound of the bootstrap CI of the per-episode DS gain is above the margin.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from roadloop_cluster.loop.adapters import eval_summary
from roadloop_cluster.loop.context import Production, StageContext
from roadloop_cluster.loop.gate_decision import decide
from roadloop_cluster.loop.gate_reasons import refusal_reason
from roadloop_cluster.loop.stage_runner import StageOutcome
from roadloop_cluster.loop.stages.sim_eval import sim_eval, without_episodes

__all__ = ["gate"]


def gate(ctx: StageContext, n: int) -> StageOutcome:
    g, lay = ctx.cfg.gate, ctx.layout
    gdir = lay.round(n) / "gate"
    gdir.mkdir(parents=True, exist_ok=True)
    bundle = lay.round(n) / "bundle"
    cand_name = ctx.round(n)["bundle"]["name"]
    inc, note = _incumbent(ctx, gdir / "incumbent.json")
    cand = sim_eval(ctx, f"bundle:{bundle}", g.seed, g.episodes, gdir / "candidate.json", cand_name)
    decision = decide(cand["per_episode"], inc["per_episode"], g.margin, confidence=g.confidence,
                      resamples=g.resamples, seed=g.bootstrap_seed)  # fmt: skip
    _publish(ctx, bundle, "candidate")
    if decision.publish:
        _publish(ctx, bundle, "production")
        ctx.state.production = Production(bundle, cand_name, gdir / "candidate.json")
    ctx.round(n)["gate"] = {
        "candidate": without_episodes(cand), "incumbent": without_episodes(inc), "published": decision.publish,
        "margin": g.margin, "difference": decision.difference.to_dict(),
        "reason": "" if decision.publish else refusal_reason(decision, cand, inc), "note": note,
    }  # fmt: skip
    ci = decision.difference
    return StageOutcome(
        {"candidate_ds": cand["ds"], "incumbent": inc["name"], "incumbent_ds": inc["ds"], "episodes": ci.n,
         "ds_gain": ci.mean, "ci_low": ci.low, "ci_high": ci.high, "published": decision.publish},
        {"gate": lay.rel(gdir)},
    )  # fmt: skip


def _incumbent(ctx: StageContext, json_out: Path) -> tuple[dict[str, Any], str]:
    """The incumbent's evaluation, and a note when it is not a fresh one.

    Simulator and pipeline are deterministic: a driver's evaluation on the gate's episodes, once made,
    is its score in every later gate (the production bundle's from the gate it won)."""
    g, prod = ctx.cfg.gate, ctx.state.production
    if prod is not None:
        earlier, name = prod.gate_eval, prod.name
    elif ctx.state.baseline_eval is not None:
        earlier, name = ctx.state.baseline_eval, g.baseline
    else:
        fresh = sim_eval(ctx, g.baseline, g.seed, g.episodes, json_out, g.baseline)
        ctx.state.baseline_eval = json_out
        return fresh, ""
    shutil.copyfile(earlier, json_out)
    return eval_summary(json_out, name), f"incumbent score from {ctx.layout.rel(earlier)} (same driver and episodes)"


def _publish(ctx: StageContext, bundle: Path, channel: str) -> None:
    ctx.roadloop("hub", "publish", bundle, "--hub", ctx.hub_url, "--token-file", ctx.layout.admin_token,
                 "--channel", channel)  # fmt: skip
