"""The vehicle's bridge, once: upload every closed bag (priority first), pull and install production."""

from __future__ import annotations

from pathlib import Path

from roadloop_cluster.loop.context import StageContext
from roadloop_cluster.loop.layout import bags_in

__all__ = ["run_bridge"]


def run_bridge(ctx: StageContext) -> str:
    lay = ctx.layout
    golden = bags_in(lay.golden)
    # the bridge replays every new bundle on the vehicle's golden bag before making it current
    golden_args: list[str | Path] = ["--golden-bag", golden[0]] if golden else []
    return ctx.roadloop(
        "bridge", "run", "--watch", lay.recordings, "--hub", ctx.hub_url, "--token-file",
        lay.vehicle_token(ctx.cfg.vehicle), "--state", lay.bridge_state, "--models", lay.models, "--public-key",
        lay.public_key, "--settle", "0", "--quiet", "--once", *golden_args,
    )  # fmt: skip
