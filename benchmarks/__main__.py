"""Run every benchmark module (or those named: `python -m benchmarks bag sim`) and print one line per figure."""

from __future__ import annotations

import argparse
import importlib
import sys
import tempfile
import traceback
from pathlib import Path

from benchmarks.common import Bench, dump

HERE = Path(__file__).resolve().parent


def main() -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    parser.add_argument("areas", nargs="*", help="bench_<area>.py modules to run (default: all)")
    parser.add_argument("--json", type=Path, default=Path("bench-out/bench.json"), help="where to write all figures")
    args = parser.parse_args()
    areas = args.areas or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    figures = []
    failed = []
    print(f"{'area':>8} | {'figure':<48} {'value':>10} unit")
    for area in areas:
        module = importlib.import_module(f"benchmarks.bench_{area}")
        with tempfile.TemporaryDirectory(prefix=f"roadloop-bench-{area}-") as tmp:
            bench = Bench(area=area, workdir=Path(tmp))
            try:
                module.run(bench)
            except Exception:
                traceback.print_exc()
                failed.append(area)
            figures.extend(bench.as_json())
    args.json.parent.mkdir(parents=True, exist_ok=True)
    dump(figures, args.json)
    missed = [f"{f['area']}:{f['name']}" for f in figures if f["ok"] is False]
    print(f"\n{len(figures)} figures, {len(missed)} missed target(s), {len(failed)} benchmark(s) failed to run")
    for m in missed:
        print(f"  missed: {m}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
