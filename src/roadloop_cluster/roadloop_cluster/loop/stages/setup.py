"""Stage `setup`: the run's config folder, signing keys and hub tokens, made with the commands an operator uses."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import yaml

from roadloop_cluster.loop.context import StageContext
from roadloop_cluster.loop.episodes import check_disjoint
from roadloop_cluster.loop.errors import LoopError
from roadloop_cluster.loop.stage_runner import StageOutcome
from roadloop_sim.scenarios import load_scenarios

__all__ = ["setup"]


def setup(ctx: StageContext, n: int) -> StageOutcome:
    lay = ctx.layout
    for d in (lay.secrets, lay.recordings, lay.bridge_state, lay.models, lay.config / "keys"):
        d.mkdir(parents=True, exist_ok=True)
    os.chmod(lay.secrets, 0o700)
    copied = _copy_config(ctx.workspace_config, lay.config)
    ctx.roadloop("keys", "gen", "--out", lay.keys)
    # the vehicle trusts this run's key (config/vehicle.yaml: public_key keys/signing.pub) and
    # installs models where the bridge puts them
    shutil.copyfile(lay.public_key, lay.config / "keys" / "signing.pub")
    _set_vehicle_models_dir(lay.config / "vehicle.yaml", lay.models.resolve())
    ctx.roadloop("hub", "token", "add", "loop-admin", "--admin", "--root", lay.hub, "--out", lay.admin_token)
    vehicle_token = lay.vehicle_token(ctx.cfg.vehicle)
    ctx.roadloop("hub", "token", "add", ctx.cfg.vehicle, "--root", lay.hub, "--out", vehicle_token)
    check_disjoint(ctx.cfg, load_scenarios(lay.config / "scenarios.yaml"))
    return StageOutcome(
        {"vehicle": ctx.cfg.vehicle, "config_files": copied},
        {"keys": lay.rel(lay.keys), "secrets": lay.rel(lay.secrets), "config": lay.rel(lay.config)},
    )


def _copy_config(src: Path, dst: Path) -> int:
    """The workspace's config files into the run's config folder (the run then never edits the workspace)."""
    n = 0
    for path in sorted(src.glob("*.yaml")):
        shutil.copyfile(path, dst / path.name)
        n += 1
    if not (dst / "topics.yaml").is_file():
        raise LoopError(f"{src}: no topics.yaml: not a roadloop config folder")
    return n


def _set_vehicle_models_dir(vehicle_yaml: Path, models: Path) -> None:
    """The run's vehicle installs bundles into OUT/vehicle/models (what a launch with OUT/config would use)."""
    if not vehicle_yaml.is_file():
        return
    data = yaml.safe_load(vehicle_yaml.read_text()) or {}
    try:
        data["drive_node"]["ros__parameters"]["model_manager"]["models_dir"] = str(models)
    except (KeyError, TypeError):
        return
    vehicle_yaml.write_text(
        "# Written by `roadloop loop`: config/vehicle.yaml with this run's models folder.\n"
        + yaml.safe_dump(data, sort_keys=False)
    )
