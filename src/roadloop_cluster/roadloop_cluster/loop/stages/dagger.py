"""Stage `rN-dagger` (rounds 2+): the deployed policy (or the shadow candidate) drives new episodes while the
simulator's privileged expert labels every state it visits (`roadloop sim record --label-with-expert`).

The expert drives a share beta of the 1 s blocks (the DAgger mixture, decaying round by round); its
command and rolled-out trajectory in each state are the labels the dataset builder takes from these
bags. The stage records how many labelled states were of each kind -- in the lead-up to a failure, near
misses, large policy-expert disagreement, the rest -- and all of them go into the aggregated dataset.
"""

from __future__ import annotations

from typing import Any

from roadloop_cluster.loop.adapters import read_json
from roadloop_cluster.loop.context import StageContext
from roadloop_cluster.loop.layout import bags_in
from roadloop_cluster.loop.stage_runner import StageOutcome
from roadloop_cluster.loop.stages.drive import driving_bundle

__all__ = ["KINDS", "dagger"]

KINDS = ("failure", "near_miss", "disagreement", "other")


def dagger(ctx: StageContext, n: int) -> StageOutcome:
    dg, rd = ctx.cfg.dagger, ctx.layout.round(n)
    bundle, name = driving_bundle(ctx, n - 1)
    recordings = ctx.layout.recordings
    before = set(bags_in(recordings))
    beta, seed = dg.round_beta(n), dg.round_seed(n)
    report = rd / "dagger.json"
    ctx.roadloop("sim", "record", "--driver", f"bundle:{bundle}", "--label-with-expert", "--beta", f"{beta:g}",
                 "--scenarios", ctx.scenarios, "--episodes", str(dg.episodes), "--seed", str(seed),
                 "--out", recordings, "--json", report, *ctx.sim_jobs)  # fmt: skip
    new = [b for b in bags_in(recordings) if b not in before]
    episodes = read_json(report, "the DAgger recording")["episodes"]
    counts: dict[str, int] = {k: 0 for k in ("states", *KINDS, "expert_drove")}
    for e in episodes:
        for k in counts:
            counts[k] += int((e.get("labelled") or {}).get(k, 0))
    ds = [float(e["driving_score"]) for e in episodes]
    summary: dict[str, Any] = {
        "model": name, "beta": beta, "seed": seed, "episodes": len(episodes), "bags": len(new), "labelled": counts,
        "ds": sum(ds) / len(ds) if ds else None,
        "collisions": sum(1 for e in episodes if e.get("end_reason") == "collision"),
    }  # fmt: skip
    ctx.round(n)["dagger"] = summary
    numbers = {"model": name, "beta": beta, "bags": len(new), **{k: counts[k] for k in ("states", *KINDS)}}
    return StageOutcome(numbers, {"dagger": ctx.layout.rel(report)})
