"""The stage runner: runs the loop's stages in order, times and logs each, stops at the first failure.

A stage is a function returning a `StageOutcome` (the numbers the report shows, the files it
made). The runner records every stage in `OUT/stages.json` (rewritten atomically after each
stage, so a crash leaves the record of everything up to it) and, on failure, raises a
StageFailed that names the stage, its error, its log and the folder kept for inspection.
"""

from __future__ import annotations

import logging
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from roadloop_cluster.loop.errors import StageFailed
from roadloop_core.errors import RoadloopError
from roadloop_core.fsio import atomic_write_json

__all__ = ["StageOutcome", "StageResult", "StageRunner"]

log = logging.getLogger("roadloop.loop")


@dataclass
class StageOutcome:
    """What a stage hands back: numbers for the report and the files it produced (relative to OUT)."""

    numbers: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)


@dataclass
class StageResult:
    """One stage's record in `stages.json`."""

    name: str
    title: str
    status: str  # ok | failed
    seconds: float
    started: float
    numbers: dict[str, Any] = field(default_factory=dict)
    artifacts: dict[str, str] = field(default_factory=dict)
    error: str | None = None
    log: str | None = None


class StageRunner:
    """Runs stages in order; `on_start`/`on_end` let a CLI show progress."""

    def __init__(
        self,
        out: Path,
        *,
        on_start: Callable[[str, str], None] | None = None,
        on_end: Callable[[StageResult], None] | None = None,
    ) -> None:
        self.out = out
        self.results: list[StageResult] = []
        self.logs = out / "logs"
        self.logs.mkdir(parents=True, exist_ok=True)
        self._on_start = on_start
        self._on_end = on_end

    @property
    def record_path(self) -> Path:
        return self.out / "stages.json"

    def log_path(self, name: str) -> Path:
        """Where a stage's subprocess output goes (`OUT/logs/<stage>.log`)."""
        return self.logs / f"{name}.log"

    def run(self, name: str, title: str, fn: Callable[[], StageOutcome]) -> StageOutcome:
        """Run one stage. Any exception becomes StageFailed naming the stage; results so far are kept."""
        if any(r.name == name for r in self.results):
            raise ValueError(f"stage name {name!r} used twice")
        if self._on_start:
            self._on_start(name, title)
        log.info("stage %s: %s", name, title)
        started = time.time()
        t0 = time.perf_counter()
        try:
            outcome = fn()
        except Exception as err:  # every failure is reported as this stage's, whatever raised it
            seconds = time.perf_counter() - t0
            message = _one_line(err)
            logp = self.log_path(name)
            if not isinstance(err, RoadloopError):
                with open(logp, "a", encoding="utf-8") as f:
                    f.write("\n--- roadloop loop: unexpected error in this stage ---\n")
                    f.write("".join(traceback.format_exception(err)))
            result = StageResult(
                name, title, "failed", seconds, started, error=message, log=self._rel(logp) if logp.exists() else None
            )
            self._finish(result)
            where = f"; log: {result.log}" if result.log else ""
            raise StageFailed(
                name,
                f"stage '{name}' ({title}) failed after {seconds:.1f} s: {message}{where}; "
                f"everything produced so far is kept in {self.out}",
            ) from err
        seconds = time.perf_counter() - t0
        logp = self.log_path(name)
        result = StageResult(
            name,
            title,
            "ok",
            seconds,
            started,
            numbers=dict(outcome.numbers),
            artifacts=dict(outcome.artifacts),
            log=self._rel(logp) if logp.exists() else None,
        )
        self._finish(result)
        return outcome

    def _finish(self, result: StageResult) -> None:
        self.results.append(result)
        atomic_write_json(self.record_path, [asdict(r) for r in self.results], default=str)
        log.info("stage %s %s in %.1f s", result.name, result.status, result.seconds)
        if self._on_end:
            self._on_end(result)

    def _rel(self, path: Path) -> str:
        try:
            return str(path.relative_to(self.out))
        except ValueError:
            return str(path)


def _one_line(err: BaseException) -> str:
    text = str(err).strip() or type(err).__name__
    first = text.splitlines()[0]
    return first if isinstance(err, RoadloopError) else f"{type(err).__name__}: {first}"
