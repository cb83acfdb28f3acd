"""Stage `rN-deploy`: the bridge pulls production, verifies and installs it; `current` must then point at it."""

from __future__ import annotations

import os
from pathlib import Path

from roadloop_cluster.loop.adapters import read_json
from roadloop_cluster.loop.context import StageContext
from roadloop_cluster.loop.errors import LoopError
from roadloop_cluster.loop.stage_runner import StageOutcome
from roadloop_cluster.loop.stages.bridge import run_bridge

__all__ = ["deploy"]


def deploy(ctx: StageContext, n: int) -> StageOutcome:
    run_bridge(ctx)
    current, prod = ctx.layout.current_model, ctx.state.production
    if prod is None:
        installed = os.readlink(current) if current.is_symlink() else None
        ctx.round(n)["deploy"] = {"installed": installed, "note": "nothing new in production"}
        return StageOutcome({"installed": str(installed), "new": False})
    if not current.is_symlink():
        raise LoopError(f"the bridge ran but {current} is not a symlink to an installed bundle")
    new = bool(ctx.round(n).get("gate", {}).get("published"))
    want = read_json(prod.bundle / "manifest.json", "the production manifest")
    got = read_json(current / "manifest.json", "the installed manifest")
    if (got.get("name"), got.get("version")) != (want.get("name"), want.get("version")):
        raise LoopError(
            f"installed {got.get('name')} v{got.get('version')} "
            f"but production is {want.get('name')} v{want.get('version')}"
        )
    installed = Path(os.readlink(current)).name
    ctx.round(n)["deploy"] = {"installed": installed, "new": new}
    return StageOutcome({"installed": installed, "new": new}, {"current": ctx.layout.rel(current)})
