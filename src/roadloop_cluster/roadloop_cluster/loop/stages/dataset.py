"""Stage `rN-dataset`: every bag in the hub's store (content-addressed, linked out) -> one dataset."""

from __future__ import annotations

from typing import Any

from roadloop_cluster.loop.adapters import dataset_summary
from roadloop_cluster.loop.context import StageContext
from roadloop_cluster.loop.errors import LoopError
from roadloop_cluster.loop.stage_runner import StageOutcome

__all__ = ["dataset"]

INTERVENTION_TAGS = ("intervention", "disengagement")


def dataset(ctx: StageContext, n: int) -> StageOutcome:
    rd = ctx.layout.round(n)
    bags = rd / "hub-bags"
    ctx.roadloop("hub", "export-bags", "--root", ctx.layout.hub, "--out", bags)
    # each exported entry is a symlink into the store, named <vehicle>__<bag>: passed one by one
    entries = sorted(p for p in bags.iterdir() if not p.name.startswith("."))
    if not entries:
        raise LoopError(f"the hub's store holds no readable bag ({bags} is empty)")
    ds = rd / "dataset"
    ctx.roadloop("data", "build", *entries, "--config", ctx.config_file(ctx.cfg.dataset_config), "--out", ds,
                 "--quiet")  # fmt: skip
    s = dataset_summary(ds)
    s["interventions"] = sum(1 for r in ctx.hub_bags() if _is_intervention(r))
    s["dagger"] = sum(1 for e in entries if e.name.endswith("_dagger"))  # `sim record --label-with-expert` names
    keys = ("dataset_id", "bags", "train", "val", "interventions", "dagger", "drops")
    ctx.round(n)["dataset"] = {k: s[k] for k in keys}
    return StageOutcome(
        {k: s[k] for k in ("bags", "train", "val", "drops", "interventions", "dagger")}
        | {"id": str(s["dataset_id"])[:12]},
        {"dataset": ctx.layout.rel(ds)},
    )


def _is_intervention(row: dict[str, Any]) -> bool:
    return any(t in INTERVENTION_TAGS for t in row.get("tags") or [])
