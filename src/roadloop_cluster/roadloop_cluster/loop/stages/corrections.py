"""Stage `r2-corrections`: the failed episodes replayed with the expert taking over before the failure,
recorded on the vehicle as intervention bags (`roadloop sim record --intervene-on`)."""

from __future__ import annotations

from roadloop_cluster.loop.context import StageContext
from roadloop_cluster.loop.layout import bags_in
from roadloop_cluster.loop.stage_runner import StageOutcome

__all__ = ["corrections"]


def corrections(ctx: StageContext, n: int) -> StageOutcome:
    inter = ctx.round(n)["interventions"]
    if not inter["failed"]:
        return StageOutcome({"failed": 0, "corrections": 0})
    recordings = ctx.layout.recordings
    before = set(bags_in(recordings))
    ctx.roadloop("sim", "record", "--intervene-on", ctx.layout.round(n) / "interventions.json", "--driver", "expert",
                 "--out", recordings, *ctx.sim_jobs)  # fmt: skip
    new = [b for b in bags_in(recordings) if b not in before]
    inter["corrections"] = len(new)
    return StageOutcome({"failed": inter["failed"], "corrections": len(new)})
