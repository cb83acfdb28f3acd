"""What a stage works with: `StageContext` (config, folders, its commands, the hub) over the run's `RunState`.

A stage is a function `(ctx, round) -> StageOutcome`. The loop builds one StageContext per
stage (its `roadloop` commands log to that stage's file); what stages hand on to later
stages (the summary that becomes loop.json, what production holds, the running hub) lives
in the one RunState they share.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roadloop_cluster.loop.commands import Commands
from roadloop_cluster.loop.config import LoopConfig
from roadloop_cluster.loop.errors import LoopError
from roadloop_cluster.loop.hub import HubServer
from roadloop_cluster.loop.layout import Layout
from roadloop_core.errors import HubClientError
from roadloop_core.hub_client import HubClient

__all__ = ["Production", "RunState", "StageContext"]


@dataclass(frozen=True)
class Production:
    """The bundle in the `production` channel and the gate evaluation with which it won."""

    bundle: Path
    name: str
    gate_eval: Path


@dataclass
class RunState:
    """Shared by the stages of one run: the summary being built, what production holds, the hub."""

    summary: dict[str, Any] = field(default_factory=dict)
    production: Production | None = None  # None: nothing published yet (the baseline is the incumbent)
    baseline_eval: Path | None = None  # the baseline's gate evaluation, once made (it is deterministic)
    hub: HubServer | None = None
    client: HubClient | None = None  # the one hub client (admin token), open while the hub runs

    def round(self, n: int) -> dict[str, Any]:
        """Round n's part of the summary (made on first use)."""
        rounds: list[dict[str, Any]] = self.summary.setdefault("rounds", [])
        for r in rounds:
            if r["round"] == n:
                return r
        r = {"round": n}
        rounds.append(r)
        return r

    def close(self) -> None:
        """Close the hub client and stop the hub (the end of a run, however it ends)."""
        client, self.client = self.client, None
        if client is not None:
            client.close()
        if self.hub is not None:
            self.hub.stop()


@dataclass(frozen=True)
class StageContext:
    """One stage's view of the run."""

    cfg: LoopConfig
    layout: Layout
    workspace_config: Path  # the config folder the run's own is copied from (setup only)
    roadloop: Commands  # `roadloop ...` logged to this stage's log, with the stage timeout
    state: RunState

    def round(self, n: int) -> dict[str, Any]:
        return self.state.round(n)

    def config_file(self, name: str) -> Path:
        """A config named in loop.yaml: absolute as given, else from the run's config folder."""
        return self.cfg.resolve(name, self.layout.config)

    @property
    def scenarios(self) -> str:
        """The loop's scenarios as `roadloop sim` takes them."""
        return ",".join(self.cfg.scenarios)

    @property
    def sim_jobs(self) -> tuple[str, str]:
        """`roadloop sim record/eval`'s worker processes, as the loop config sets them."""
        return "--jobs", str(self.cfg.episode_jobs)

    @property
    def hub_url(self) -> str:
        if self.state.hub is None:
            raise LoopError("the hub is not running")
        return self.state.hub.url

    @property
    def hub(self) -> HubClient:
        if self.state.client is None:
            raise LoopError("the hub is not running")
        return self.state.client

    def hub_bags(self) -> list[dict[str, Any]]:
        """The hub's catalog, as an admin sees it over HTTP (`GET /v1/bags`)."""
        try:
            return self.hub.list_bags()
        except HubClientError as err:
            raise LoopError(str(err)) from err
