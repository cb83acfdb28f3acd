"""Stage `hub`: `roadloop hub serve` on a free loopback port, healthy, and the run's one hub client."""

from __future__ import annotations

from roadloop_cluster.loop.context import StageContext
from roadloop_cluster.loop.hub import HubServer
from roadloop_cluster.loop.stage_runner import StageOutcome
from roadloop_core.hub_client import HubClient

__all__ = ["serve_hub"]


def serve_hub(ctx: StageContext, n: int) -> StageOutcome:
    lay = ctx.layout
    hub = HubServer(
        lay.hub, lay.public_key, lay.log("hub"), start_timeout_s=ctx.cfg.hub_start_timeout_s, env=ctx.roadloop.env
    )
    hub.start()
    ctx.state.hub = hub
    ctx.state.client = HubClient.from_token_file(hub.url, lay.admin_token)
    return StageOutcome({"url": hub.url}, {"hub": lay.rel(lay.hub)})
