"""Stage `r2-fleet`: the deployed policy (or the shadow candidate) drives new episodes; those it does not
finish cleanly (collision, off-road, invalid command, timeout) become interventions."""

from __future__ import annotations

from typing import Any

from roadloop_cluster.loop.adapters import read_json
from roadloop_cluster.loop.context import StageContext
from roadloop_cluster.loop.stage_runner import StageOutcome
from roadloop_cluster.loop.stages.drive import driving_bundle
from roadloop_cluster.loop.stages.sim_eval import sim_eval, without_episodes
from roadloop_core.fsio import atomic_write_json

__all__ = ["fleet"]


def fleet(ctx: StageContext, n: int) -> StageOutcome:
    rd, iv = ctx.layout.round(n), ctx.cfg.intervention
    bundle, name = driving_bundle(ctx, n - 1)
    report = rd / "fleet.json"
    res = sim_eval(ctx, f"bundle:{bundle}", iv.seed, iv.episodes, report, name)
    data = read_json(report, "the fleet evaluation")
    failed: list[dict[str, Any]] = []
    for e in data["episodes"]:
        if not e.get("success") and all((e["scenario"], e["seed"]) != (f["scenario"], f["seed"]) for f in failed):
            failed.append(e)
    failed = failed[: iv.max_corrections]
    # what `roadloop sim record --intervene-on` replays: the same report, only the episodes taken over
    atomic_write_json(rd / "interventions.json", {**data, "episodes": failed}, default=str)
    rows = {(e["scenario"], e["seed"]): e for e in res["per_episode"]}
    ctx.round(n)["interventions"] = without_episodes(res) | {
        "model": name, "episodes": len(res["per_episode"]), "failed": len(failed),
        "failed_episodes": [
            {k: rows[(e["scenario"], e["seed"])].get(k) for k in ("scenario", "seed", "ds", "why")} for e in failed
        ],
        "corrections": 0,
    }  # fmt: skip
    numbers = {"model": name, "ds": res["ds"], "episodes": len(res["per_episode"]), "failed": len(failed)}
    return StageOutcome(numbers, {"fleet": ctx.layout.rel(report)})
