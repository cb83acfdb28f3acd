"""`run_loop`: the fleet loop end to end, two rounds, then the report.

Round 1 records expert demonstrations, ships them, builds a dataset from the hub's store,
trains with torchrun, exports and signs, gates against lanekeep, deploys through the
bridge and drives with the installed model. Round 2 lets that policy drive, turns its
failures into interventions with expert corrections, ships them with priority, retrains
on everything and gates against production. The report is written even when a stage fails.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path

from roadloop_cluster.loop.config import LoopConfig
from roadloop_cluster.loop.errors import StageFailed
from roadloop_cluster.loop.report import write_report
from roadloop_cluster.loop.stage_runner import StageOutcome, StageResult, StageRunner
from roadloop_cluster.loop.stages import Layout, LoopContext
from roadloop_core.config import config_dir, dataclass_to_dict
from roadloop_core.fsio import atomic_write_json

__all__ = ["plan", "run_loop"]

StageFn = Callable[[LoopContext, str, int], StageOutcome]
Stage = tuple[str, str, StageFn, int]


def plan(cfg: LoopConfig) -> list[Stage]:
    """The stages of a run, in order: (name, what it does, LoopContext method, round)."""
    stages: list[Stage] = [
        ("setup", "signing keys and hub tokens for this run", LoopContext.setup, 0),
        ("hub", "start the hub on loopback", LoopContext.start_hub, 0),
    ]
    for n in range(1, cfg.rounds + 1):
        steps: list[tuple[str, str, StageFn]] = []
        if n == 1:
            steps.append(("record", "record expert demonstrations on the vehicle", LoopContext.record))
        else:
            steps.append(("fleet", "the deployed policy drives; failures are interventions", LoopContext.fleet_drive))
            steps.append(("corrections", "record the expert's corrections of failed episodes", LoopContext.corrections))
        steps += [
            ("ship", "the bridge ships closed bags to the hub (priority first)", LoopContext.ship),
            ("dataset", "build a dataset from the hub's store", LoopContext.dataset),
            ("train", f"train with torchrun on {cfg.train.nproc} processes", LoopContext.train),
            ("export", "export ONNX, sign the bundle", LoopContext.export),
            ("gate", "closed-loop gate against production; publish if it wins", LoopContext.gate),
            ("deploy", "the bridge pulls, verifies and installs production", LoopContext.deploy),
            ("drive", "the onboard pipeline drives with the installed model", LoopContext.drive),
        ]
        stages += [(f"r{n}-{name}", title, fn, n) for name, title, fn in steps]
    return stages


def run_loop(
    cfg: LoopConfig,
    out: Path,
    *,
    cfg_dir: Path | None = None,
    on_start: Callable[[str, str], None] | None = None,
    on_end: Callable[[StageResult], None] | None = None,
) -> Path:
    """Run every stage into `out`; returns the report's path. A failed stage raises StageFailed after the report."""
    out.mkdir(parents=True, exist_ok=True)
    runner = StageRunner(out, on_start=on_start, on_end=on_end)
    ctx = LoopContext(cfg=cfg, layout=Layout(out), config_dir=cfg_dir or config_dir(), log_dir=runner.logs)
    ctx.summary.update({"format": "roadloop-loop/1", "status": "running", "config": dataclass_to_dict(cfg)})
    t0 = time.perf_counter()
    failure: StageFailed | None = None
    try:
        for name, title, fn, n in plan(cfg):
            runner.run(name, title, functools.partial(fn, ctx, name, n))
            _save(ctx, runner, t0)
    except StageFailed as err:
        failure = err
        ctx.summary.update({"status": "failed", "failed_stage": err.stage, "error": str(err)})
    except BaseException:  # Ctrl-C, SIGTERM: say so in the record and the report, then go on unwinding
        ctx.summary.update({"status": "interrupted", "error": "interrupted (Ctrl-C or SIGTERM)"})
        _save(ctx, runner, t0)
        write_report(ctx.summary, out)
        raise
    finally:
        if ctx.hub is not None:
            ctx.hub.stop()
    if failure is None:
        ctx.summary["status"] = "ok"
    _save(ctx, runner, t0)
    report = write_report(ctx.summary, out)
    if failure is not None:
        raise failure
    return report


def _save(ctx: LoopContext, runner: StageRunner, t0: float) -> None:
    from dataclasses import asdict

    ctx.summary["stages"] = [asdict(r) for r in runner.results]
    ctx.summary["wall_s"] = time.perf_counter() - t0
    atomic_write_json(ctx.layout.out / "loop.json", ctx.summary, default=str)
