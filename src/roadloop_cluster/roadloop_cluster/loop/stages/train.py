"""Stage `rN-train`: `roadloop train` (torchrun) on the round's dataset with the loop's epochs and batch size.

train.yaml is handed over as it is; the loop's sizes go as `--epochs/--batch-size` overrides and
the model takes its input size, horizon and dt from the dataset, as in any `roadloop train`.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from roadloop_cluster.loop.adapters import training_summary
from roadloop_cluster.loop.context import StageContext
from roadloop_cluster.loop.stage_runner import StageOutcome

__all__ = ["init_run", "train"]


def init_run(ctx: StageContext, n: int) -> Path | None:
    """The run whose weights round n fine-tunes: production's (else the previous round's candidate, which
    drove in shadow mode); None in round 1 or with `train.init_from: scratch`."""
    if n == 1 or ctx.cfg.train.init_from == "scratch":
        return None
    prod = ctx.state.production
    run = prod.bundle.parent / "run" if prod is not None else ctx.layout.round(n - 1) / "run"
    return run if (run / "model.pt").is_file() else None


def train(ctx: StageContext, n: int) -> StageOutcome:
    rd, t = ctx.layout.round(n), ctx.cfg.train
    config = ctx.config_file(t.config)
    run = rd / "run"
    init = init_run(ctx, n)
    epochs = t.finetune_epochs if init is not None and t.finetune_epochs else t.epochs
    sizes: list[str | Path] = ["--epochs", str(epochs)]
    if t.batch_size:
        sizes += ["--batch-size", str(t.batch_size)]
    if init is not None:
        sizes += ["--init-from", init]
    t0 = time.perf_counter()
    ctx.roadloop("train", "--config", config, "--data", rd / "dataset", "--out", run, "--nproc", str(t.nproc), *sizes)
    seconds = time.perf_counter() - t0
    summary = training_summary(run)
    summary["init_from"] = ctx.layout.rel(init) if init is not None else None
    ctx.round(n)["training"] = summary
    numbers: dict[str, Any] = {"ranks": summary.get("world_size"), "steps": summary.get("total_steps"),
                               "seconds": seconds, "init": "production" if init is not None else "scratch"}  # fmt: skip
    open_loop = summary["open_loop"]
    for who in ("model", "constant_velocity", "ego_mlp"):
        if who in open_loop and open_loop[who].get("l2_3s") is not None:
            numbers[f"{who}_l2_3s"] = open_loop[who]["l2_3s"]
    return StageOutcome(numbers, {"run": ctx.layout.rel(run), "train_config": ctx.layout.rel(config)})
