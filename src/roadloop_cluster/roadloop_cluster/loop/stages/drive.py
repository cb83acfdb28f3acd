"""Stage `rN-drive`: the onboard pipeline with the installed bundle, closed loop in the simulator, and a bag
replay for its latency. If nothing was ever deployed, round n's candidate drives in shadow mode."""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

from roadloop_cluster.loop.adapters import read_json
from roadloop_cluster.loop.context import StageContext
from roadloop_cluster.loop.layout import bags_in
from roadloop_cluster.loop.stage_runner import StageOutcome
from roadloop_cluster.loop.stages.sim_eval import sim_eval, without_episodes

__all__ = ["drive", "driving_bundle"]


def drive(ctx: StageContext, n: int) -> StageOutcome:
    rd, d = ctx.layout.round(n), ctx.cfg.drive
    bundle, name = driving_bundle(ctx, n)
    plots = rd / "drive-plots"
    res = sim_eval(ctx, f"bundle:{bundle}", d.seed, d.episodes, rd / "drive.json", name, plots)
    drove = without_episodes(res)
    drove["model"] = name
    drove["per_episode"] = [{k: e.get(k) for k in ("scenario", "seed", "ds", "rc", "why")} for e in res["per_episode"]]
    # the evaluator draws each episode's path over the road: the report shows the first two and the summary
    pngs = sorted(plots.glob("*.png")) if plots.is_dir() else []
    episodes = [p for p in pngs if p.name != "summary.png"][:2]
    drove["plots"] = [ctx.layout.rel(p) for p in episodes + [p for p in pngs if p.name == "summary.png"]]
    ctx.round(n)["drive"] = drove
    latency = _latency(ctx, rd, bundle)
    ctx.round(n)["latency"] = latency
    return StageOutcome(
        {"model": name, "ds": res["ds"], "rc": res["rc"], "ip": res["ip"], "p99_ms": latency.get("p99_ms")},
        {"drive": ctx.layout.rel(rd / "drive.json")},
    )


def driving_bundle(ctx: StageContext, n: int) -> tuple[Path, str]:
    """What the vehicle drives with: the installed model, or (nothing deployed yet because the candidate
    lost its gate) round n's candidate in shadow mode, so the loop still learns from its failures."""
    current = ctx.layout.current_model
    if current.exists():
        return current, Path(os.readlink(current)).name if current.is_symlink() else current.name
    name = ctx.round(n).get("bundle", {}).get("name", "candidate")
    return ctx.layout.round(n) / "bundle", f"{name} (not deployed: shadow mode)"


def _latency(ctx: StageContext, rd: Path, bundle: Path) -> dict[str, Any]:
    """Replay one recorded bag through the pipeline: `roadloop replay` stats plus per-frame samples."""
    lay = ctx.layout
    bags = bags_in(lay.golden) or bags_in(lay.recordings)
    if not bags:
        return {}
    bag = bags[0]
    out = rd / "replay"
    shutil.rmtree(out, ignore_errors=True)
    stats_path = rd / "replay-stats.json"
    ctx.roadloop("replay", bag, "--bundle", bundle, "--out", out, "--stats", stats_path,
                 "--public-key", lay.public_key)  # fmt: skip
    stats = read_json(stats_path, "the replay stats")
    measured = stats.get("measured", {})
    frame = (measured.get("latency_ms") or {}).get("frame", {})
    return {
        "bag": bag.name,
        "frames": stats.get("frames"),
        "fallbacks": stats.get("fallbacks"),
        "p50_ms": frame.get("p50"),
        "p99_ms": frame.get("p99"),
        "realtime_factor": measured.get("realtime_factor"),
        "samples_ms": _frame_latencies(bag, bundle, lay.config / "vehicle.yaml"),
    }


def _frame_latencies(bag: Path, bundle: Path, vehicle_yaml: Path) -> list[float]:
    """Whole-frame latency of every frame, timed around Pipeline.step as `roadloop replay` does."""
    from roadloop_core.bag import open_bag
    from roadloop_vehicle.params import load_vehicle_params
    from roadloop_vehicle.pipeline import Pipeline

    params = load_vehicle_params(vehicle_yaml)
    pipeline = Pipeline(params, bundle, public_key=vehicle_yaml.parent / "keys" / "signing.pub", deterministic=True)
    samples: list[float] = []
    with open_bag(bag) as reader:
        for raw in reader.messages():
            n = len(pipeline.reports)
            t0 = time.perf_counter()
            pipeline.step(raw)
            if len(pipeline.reports) > n:
                samples.append((time.perf_counter() - t0) * 1e3)
    return [round(s, 4) for s in samples]
