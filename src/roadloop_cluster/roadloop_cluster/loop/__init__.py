"""The fleet loop end to end (`roadloop loop`, `make demo`): stages, stage runner, report.

Layout: `config` (loop.yaml), `layout` (the run's folders), `commands` (parts run through
their CLIs, logged per stage), `hub` (a hub on loopback), `context` (what a stage works with),
`episodes` (which episodes a sim run plays), `stages/` (one module per stage),
`gate_decision` and `gate_reasons` (the gate's verdict, pure, and its words), `stage_runner`
(timed stages, failure names the stage), `adapters` (reading the parts' outputs), `report`
(report.md + figures), `run` (the order of stages), `cli` (the verb).
"""

from __future__ import annotations

import importlib
from typing import Any

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

_WHERE = {
    "LoopConfig": "config",
    "load_loop_config": "config",
    "LoopError": "errors",
    "StageFailed": "errors",
    "write_report": "report",
    "plan": "run",
    "run_loop": "run",
    "StageOutcome": "stage_runner",
    "StageResult": "stage_runner",
    "StageRunner": "stage_runner",
}


def __getattr__(name: str) -> Any:
    """Lazy: `roadloop --help` loads every verb's package, and matplotlib/httpx are not needed for that."""
    if name in _WHERE:
        return getattr(importlib.import_module(f"roadloop_cluster.loop.{_WHERE[name]}"), name)
    raise AttributeError(f"module 'roadloop_cluster.loop' has no attribute {name!r}")
