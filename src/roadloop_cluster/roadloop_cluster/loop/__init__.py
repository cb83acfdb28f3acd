"""The fleet loop end to end (`roadloop loop`, `make demo`): stages, stage runner, report.

Layout: `config` (loop.yaml), `runner` (timed stages, failure names the stage),
`proc` (parts run through their CLIs), `hub` (a hub on loopback), `stages` (what each
stage does), `adapters` (reading the parts' outputs), `report` (report.md + figures),
`run` (the order of stages), `cli` (the verb).
"""

from roadloop_cluster.loop.config import LoopConfig, load_loop_config
from roadloop_cluster.loop.errors import LoopError, StageFailed
from roadloop_cluster.loop.report import write_report
from roadloop_cluster.loop.run import plan, run_loop
from roadloop_cluster.loop.runner import StageOutcome, StageResult, StageRunner

__all__ = [
    "LoopConfig",
    "LoopError",
    "StageFailed",
    "StageOutcome",
    "StageResult",
    "StageRunner",
    "load_loop_config",
    "plan",
    "run_loop",
    "write_report",
]
