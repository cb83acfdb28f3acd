"""Stage `rN-gate`: candidate vs the production model (round 1: the baseline) on the same scenarios and seeds.

The candidate always goes to the `candidate` channel; to `production` only if the gate decides so.
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
    decision = decide(cand["ds"], inc["ds"], g.margin)
    _publish(ctx, bundle, "candidate")
    if decision.publish:
        _publish(ctx, bundle, "production")
        ctx.state.production = Production(bundle, cand_name, gdir / "candidate.json")
    ctx.round(n)["gate"] = {
        "candidate": without_episodes(cand), "incumbent": without_episodes(inc), "published": decision.publish,
        "margin": g.margin, "reason": "" if decision.publish else refusal_reason(cand, inc, g.margin), "note": note,
    }  # fmt: skip
    return StageOutcome(
        {
            "candidate_ds": cand["ds"],
            "incumbent": inc["name"],
            "incumbent_ds": inc["ds"],
            "published": decision.publish,
        },
        {"gate": lay.rel(gdir)},
    )


def _incumbent(ctx: StageContext, json_out: Path) -> tuple[dict[str, Any], str]:
    """The incumbent's evaluation, and a note when it is not a fresh one."""
    g, prod = ctx.cfg.gate, ctx.state.production
    if prod is None:
        return sim_eval(ctx, g.baseline, g.seed, g.episodes, json_out, g.baseline), ""
    # the production bundle was scored on exactly these scenarios and seeds when it won its gate, and
    # simulator and pipeline are deterministic: that evaluation is the incumbent's score
    shutil.copyfile(prod.gate_eval, json_out)
    note = f"incumbent score from {ctx.layout.rel(prod.gate_eval)} (same bundle, scenarios and seeds)"
    return eval_summary(json_out, prod.name), note


def _publish(ctx: StageContext, bundle: Path, channel: str) -> None:
    ctx.roadloop("hub", "publish", bundle, "--hub", ctx.hub_url, "--token-file", ctx.layout.admin_token,
                 "--channel", channel)  # fmt: skip
