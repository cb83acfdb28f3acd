"""Stage `r1-record`: expert demonstrations recorded into the vehicle's recording folder (one folder per bag)."""

from __future__ import annotations

import shutil

from roadloop_cluster.loop.context import StageContext
from roadloop_cluster.loop.errors import LoopError
from roadloop_cluster.loop.layout import bags_in, tree_size
from roadloop_cluster.loop.stage_runner import StageOutcome

__all__ = ["record"]


def record(ctx: StageContext, n: int) -> StageOutcome:
    lay, rec = ctx.layout, ctx.cfg.record
    out = lay.recordings
    before = set(bags_in(out))
    names = ",".join(rec.scenarios or ctx.cfg.scenarios)
    ctx.roadloop("sim", "record", "--scenarios", names, "--episodes", str(rec.episodes), "--seed", str(rec.seed),
                 "--driver", "expert", "--out", out, *ctx.sim_jobs)  # fmt: skip
    bags = [b for b in bags_in(out) if b not in before]
    if not bags:
        raise LoopError(f"`roadloop sim record` wrote no bag under {out}")
    # the vehicle keeps one expert drive as its golden bag: the bridge replays every new bundle on it
    # (no fallback, no NaN) before making it current
    if not bags_in(lay.golden):
        shutil.copytree(bags[0], lay.golden / bags[0].name)
    ctx.round(n)["recorded"] = {"bags": len(bags), "episodes": rec.episodes}
    return StageOutcome({"bags": len(bags), "MB": sum(tree_size(b) for b in bags) / 1e6}, {"recordings": lay.rel(out)})
