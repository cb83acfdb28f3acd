"""`roadloop sim eval` of one driver on the loop's scenarios, read back as the report's summary."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from roadloop_cluster.loop.adapters import eval_summary
from roadloop_cluster.loop.context import StageContext

__all__ = ["sim_eval", "without_episodes"]


def sim_eval(ctx: StageContext, driver: str, seed: int, episodes: int, json_out: Path, name: str,
             plots: Path | None = None) -> dict[str, Any]:  # fmt: skip
    """Drive `episodes` episodes from base seed `seed`; the report goes to `json_out` (and plots to `plots`)."""
    args: list[str | Path] = ["sim", "eval", "--driver", driver, "--scenarios", ctx.scenarios, "--episodes",
                              str(episodes), "--seed", str(seed), "--json", json_out, *ctx.sim_jobs]  # fmt: skip
    if plots is not None:
        args += ["--plots", plots]
    ctx.roadloop(*args)
    return eval_summary(json_out, name)


def without_episodes(res: dict[str, Any]) -> dict[str, Any]:
    """An evaluation summary without its per-episode rows (what loop.json keeps of most evaluations)."""
    return {k: v for k, v in res.items() if k != "per_episode"}
