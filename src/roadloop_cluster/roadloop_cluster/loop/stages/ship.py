"""Stage `rN-ship`: the vehicle bridge uploads every closed bag; afterwards the hub's catalog holds them all."""

from __future__ import annotations

import time

from roadloop_cluster.loop.context import StageContext
from roadloop_cluster.loop.errors import LoopError
from roadloop_cluster.loop.layout import bags_in, tree_size
from roadloop_cluster.loop.stage_runner import StageOutcome
from roadloop_cluster.loop.stages.bridge import run_bridge

__all__ = ["ship"]


def ship(ctx: StageContext, n: int) -> StageOutcome:
    before = ctx.hub_bags()
    t0 = time.perf_counter()
    run_bridge(ctx)
    seconds = time.perf_counter() - t0
    after = ctx.hub_bags()
    recordings = ctx.layout.recordings
    missing = {b.name for b in bags_in(recordings)} - {r.get("bag_name") for r in after}
    if missing:
        raise LoopError(f"after the bridge ran, the hub lacks {len(missing)} bag(s): {sorted(missing)[:3]}")
    tagged = [r["bag_name"] for r in after if r not in before and r.get("tags")]
    ctx.round(n)["shipped"] = {"new": len(after) - len(before), "total": len(after)}
    return StageOutcome(
        {
            "uploaded": len(after) - len(before),
            "hub_bags": len(after),
            "tagged": len(tagged),
            "MB_per_s": tree_size(recordings) / 1e6 / max(seconds, 1e-6),
        }
    )
