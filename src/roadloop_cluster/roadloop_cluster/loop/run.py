"""`run_loop`: the fleet loop end to end, round after round, then the report.

Round 1 records expert demonstrations, ships them, builds a dataset from the hub's store,
trains with torchrun, exports and signs, gates against lanekeep, deploys through the
bridge and drives with the installed model. Every later round lets that policy drive, turns its
failures into interventions with expert corrections (shipped with priority), lets it drive again
while the expert labels every state it visits (DAgger), retrains on everything (fine-tuning
production's weights or from scratch) and gates against production. The report is written even when a stage fails.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from roadloop_cluster.loop.commands import Commands
from roadloop_cluster.loop.config import LoopConfig
from roadloop_cluster.loop.context import RunState, StageContext
from roadloop_cluster.loop.errors import StageFailed
from roadloop_cluster.loop.layout import Layout
from roadloop_cluster.loop.report import write_report
from roadloop_cluster.loop.stage_runner import StageOutcome, StageResult, StageRunner
from roadloop_cluster.loop.stages.corrections import corrections
from roadloop_cluster.loop.stages.dagger import dagger
from roadloop_cluster.loop.stages.dataset import dataset
from roadloop_cluster.loop.stages.deploy import deploy
from roadloop_cluster.loop.stages.drive import drive
from roadloop_cluster.loop.stages.evaluate import evaluate
from roadloop_cluster.loop.stages.export import export
from roadloop_cluster.loop.stages.fleet import fleet
from roadloop_cluster.loop.stages.gate import gate
from roadloop_cluster.loop.stages.record import record
from roadloop_cluster.loop.stages.serve_hub import serve_hub
from roadloop_cluster.loop.stages.setup import setup
from roadloop_cluster.loop.stages.ship import ship
from roadloop_cluster.loop.stages.train import train
from roadloop_core.config import dataclass_to_dict
from roadloop_core.fsio import atomic_write_json

__all__ = ["plan", "run_loop"]

StageFn = Callable[[StageContext, int], StageOutcome]
Stage = tuple[str, str, StageFn, int]


def plan(cfg: LoopConfig) -> list[Stage]:
    """The stages of a run, in order: (name, what it does, stage function, round)."""
    stages: list[Stage] = [
        ("setup", "signing keys and hub tokens for this run", setup, 0),
        ("hub", "start the hub on loopback", serve_hub, 0),
    ]
    for n in range(1, cfg.rounds + 1):
        steps: list[tuple[str, str, StageFn]] = []
        if n == 1:
            steps.append(("record", "record expert demonstrations on the vehicle", record))
        else:
            if cfg.intervention.episodes:
                steps.append(("fleet", "the deployed policy drives; failures are interventions", fleet))
                steps.append(("corrections", "record the expert's corrections of failed episodes", corrections))
            if cfg.dagger.episodes:
                steps.append(("dagger", "the deployed policy drives, the expert labels every state (DAgger)", dagger))
        steps += [
            ("ship", "the bridge ships closed bags to the hub (priority first)", ship),
            ("dataset", "build a dataset from the hub's store", dataset),
            ("train", f"train with torchrun on {cfg.train.nproc} processes", train),
            ("export", "export ONNX, sign the bundle", export),
            ("gate", "closed-loop gate against production; publish if it wins", gate),
            ("deploy", "the bridge pulls, verifies and installs production", deploy),
            ("drive", "the onboard pipeline drives with the installed model", drive),
        ]
        stages += [(f"r{n}-{name}", title, fn, n) for name, title, fn in steps]
    if cfg.evaluation.run:
        stages.append(("evaluate", "the final model, the expert and the baselines on the held-out episodes", evaluate,
                       cfg.rounds))  # fmt: skip
    return stages


def run_loop(
    cfg: LoopConfig,
    out: Path,
    *,
    cfg_dir: Path,
    on_start: Callable[[str, str], None] | None = None,
    on_end: Callable[[StageResult], None] | None = None,
) -> Path:
    """Run every stage into `out` with the workspace config folder `cfg_dir` (copied into OUT/config);
    returns the report's path. A failed stage raises StageFailed after the report is written."""
    out.mkdir(parents=True, exist_ok=True)
    layout = Layout(out)
    runner = StageRunner(out, on_start=on_start, on_end=on_end)
    state = RunState({"format": "roadloop-loop/1", "status": "running", "config": dataclass_to_dict(cfg)})
    env = {"ROADLOOP_CONFIG_DIR": str(layout.config.resolve())}  # every part reads the run's config folder
    t0 = time.perf_counter()
    failure: StageFailed | None = None
    try:
        for name, title, fn, n in plan(cfg):
            ctx = StageContext(cfg, layout, cfg_dir, Commands(layout.log(name), cfg.stage_timeout_s, env), state)
            runner.run(name, title, functools.partial(fn, ctx, n))
            _save(state, runner, layout, t0)
    except StageFailed as err:
        failure = err
        state.summary.update({"status": "failed", "failed_stage": err.stage, "error": str(err)})
    except BaseException:  # Ctrl-C, SIGTERM: say so in the record and the report, then go on unwinding
        state.summary.update({"status": "interrupted", "error": "interrupted (Ctrl-C or SIGTERM)"})
        _save(state, runner, layout, t0)
        write_report(state.summary, out)
        raise
    finally:
        state.close()
    if failure is None:
        state.summary["status"] = "ok"
    _save(state, runner, layout, t0)
    report = write_report(state.summary, out)
    if failure is not None:
        raise failure
    return report


def _save(state: RunState, runner: StageRunner, layout: Layout, t0: float) -> None:
    state.summary["stages"] = [asdict(r) for r in runner.results]
    state.summary["wall_s"] = time.perf_counter() - t0
    atomic_write_json(layout.out / "loop.json", state.summary, default=str)
