"""What every benchmark shares: a workspace folder and one printed line per figure.

A benchmark module `benchmarks/bench_<area>.py` defines `run(bench: Bench) -> None`
and calls `bench.figure(...)` once per figure. Ratios are always measured side by
side in the same run (never against a number remembered from another machine).
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Bench", "Figure", "timed"]


@dataclass
class Figure:
    area: str
    name: str
    value: float
    unit: str
    target: str = ""
    ok: bool | None = None
    detail: str = ""


@dataclass
class Bench:
    area: str
    workdir: Path
    figures: list[Figure] = field(default_factory=list)
    quick: bool = bool(os.environ.get("ROADLOOP_BENCH_QUICK"))

    def figure(
        self, name: str, value: float, unit: str = "", *, target: str = "", ok: bool | None = None, detail: str = ""
    ) -> Figure:
        fig = Figure(self.area, name, value, unit, target, ok, detail)
        self.figures.append(fig)
        verdict = "" if ok is None else ("  [ok]" if ok else "  [MISSED]")
        tgt = f"  (target {target})" if target else ""
        det = f"  {detail}" if detail else ""
        print(f"{self.area:>8} | {name:<48} {value:>10.3f} {unit:<8}{tgt}{verdict}{det}", flush=True)
        return fig

    def as_json(self) -> list[dict[str, Any]]:
        return [f.__dict__ for f in self.figures]


@contextmanager
def timed() -> Iterator[list[float]]:
    """`with timed() as t: ...` then `t[0]` holds the elapsed wall seconds."""
    out: list[float] = []
    start = time.perf_counter()
    try:
        yield out
    finally:
        out.append(time.perf_counter() - start)


def dump(figures: list[dict[str, Any]], path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(figures, indent=2))
    os.replace(tmp, path)
