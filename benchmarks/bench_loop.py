"""The fleet loop: wall time of one round, end to end, as `roadloop loop --rounds 1` runs it, and how close
the round's policy drives to the expert: policy DS / expert DS on the gate's episodes (paired bootstrap CI).

`make demo`'s own first round (`config/loop.yaml`, `--rounds 1`: 32 demonstrations, 15 epochs on 2
ranks, a 32-pair gate; about 4 minutes on 2 cores): setup and hub, record, ship, dataset, train,
export, gate, deploy and drive, every part its own process. The detail line names the slowest
stages. The quick smoke run uses a tiny round instead.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import yaml

from benchmarks.common import Bench
from roadloop_core.config import config_dir
from roadloop_sim.stats import MeanCI, bootstrap_ratio_ci


def _config(work: Path, quick: bool) -> Path:
    """`make demo`'s own config (its first round is the benchmark), or a tiny one for the quick smoke run."""
    cfg = config_dir()
    if not quick:
        return cfg / "loop.yaml"
    loop = {
        "vehicle": "bench-car",
        "rounds": 1,
        "scenarios": ["highway_light", "highway_dense"],
        "dataset_config": str(cfg / "dataset.yaml"),
        "record": {"episodes": 2, "seed": 1},
        "train": {"config": str(cfg / "train.yaml"), "nproc": 2, "epochs": 1, "batch_size": 32},
        "gate": {"episodes": 2, "seed": 7},
        "drive": {"episodes": 2, "seed": 11},
        "intervention": {"episodes": 2, "seed": 13},
        "evaluation": {"episodes": 2, "seed": 21},
    }
    path = work / "loop.yaml"
    path.write_text(yaml.safe_dump({"loop": loop}))
    return path


def _ds_ratio(policy: Path, expert: Path) -> MeanCI:
    """Policy DS / expert DS on the same episodes, paired by (scenario, seed)."""

    def by_episode(path: Path) -> dict[tuple[str, int], float]:
        rows = json.loads(path.read_text())["episodes"]
        return {(r["scenario"], int(r["seed"])): float(r["driving_score"]) for r in rows}

    p, e = by_episode(policy), by_episode(expert)
    keys = sorted(p.keys() & e.keys())
    return bootstrap_ratio_ci([p[k] for k in keys], [e[k] for k in keys])


def run(bench: Bench) -> None:
    out = bench.workdir / "loop-out"
    entry = "import sys; from roadloop_core.cli.main import main; sys.argv[0] = 'roadloop'; main()"
    config = _config(bench.workdir, bench.quick)
    argv = [sys.executable, "-c", entry, "loop", "--config", str(config), "--rounds", "1", "--out", str(out)]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=1800, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"roadloop loop failed: {done.stderr.strip().splitlines()[-1:]}")
    summary = json.loads((out / "loop.json").read_text())
    stages = sorted(summary["stages"], key=lambda s: -float(s["seconds"]))
    slowest = ", ".join(f"{s['name']} {float(s['seconds']):.0f} s" for s in stages[:4])
    r1 = summary["rounds"][0]
    gate = out / "round1" / "gate" / "candidate.json"
    expert = bench.workdir / "expert.json"
    g = r1["gate"]["difference"]["n"]
    cfg = yaml.safe_load(config.read_text())["loop"]["gate"]
    subprocess.run(
        [sys.executable, "-c", entry, "sim", "eval", "--driver", "expert", "--scenarios", "highway_light,highway_dense",
         "--episodes", str(g), "--seed", str(cfg["seed"]), "--json", str(expert), "--jobs", "0"],
        capture_output=True, text=True, timeout=1800, check=True,
    )  # fmt: skip
    ratio = _ds_ratio(gate, expert)
    bench.figure(
        "policy DS / expert DS (round 1, gate episodes)",
        ratio.mean,
        "",
        target=">= 0.9 (make demo, loop-full)",
        detail=f"95 % paired bootstrap CI [{ratio.low:.2f}, {ratio.high:.2f}] over {ratio.n} episodes "
        + ("(quick: a tiny round)" if bench.quick else "(make demo's round 1; loop-full's final model: docs/loop.md)"),
    )
    bench.figure(
        "one round wall time",
        float(summary["wall_s"]),
        "s",
        detail=f"{len(stages)} stages ({r1['dataset']['train']} train samples, "
        f"{r1['gate']['difference']['n']} gate pairs); slowest: {slowest}",
    )
