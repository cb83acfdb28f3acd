"""Training benchmarks: DDP scaling on CPU, checkpoint cost, and a short run against constant velocity.

Every figure comes from real `torchrun` launches (roadloop_cluster.train.launch) on this machine;
the 1-rank and 2-rank runs use the same data and config side by side, one intra-op thread per rank.
The data is synthetic drive bags (`tests.support`) built by the real dataset builder with
config/dataset.yaml. Set ROADLOOP_BENCH_SIM_DATASET to a dataset from `roadloop sim record` +
`roadloop data build` to make the last figure use simulator data; otherwise it records one itself
when the simulator is installed, else uses the drive-bag dataset (the figure's detail says which).
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import Bench
from roadloop_cluster.train.launch import launch
from tests.support.datasets import build_drive_dataset
from tests.support.drive_bags import SynthDrive

# config/train.yaml's model; its input size, horizon and dt come from the dataset (config/dataset.yaml's)
MODEL = {"encoder": "small", "channels": [16, 32, 64, 64], "state_hidden": 64, "hidden": 128}


def _config(path: Path, model: dict[str, Any], run: dict[str, Any]) -> Path:
    base = {"batch_size": 64, "checkpoint_every": 10_000, "log_every": 50, "threads_per_rank": 1}
    path.write_text(yaml.safe_dump({"model": model, "run": base | run}))
    return path


def _sim_dataset(work: Path) -> tuple[Path | None, str]:
    given = os.environ.get("ROADLOOP_BENCH_SIM_DATASET")
    if given:
        return Path(given), f"simulator dataset {given}"
    roadloop = str(Path(sys.executable).parent / "roadloop")
    bags, ds = work / "bags", work / "sim-ds"
    env = os.environ | {"SDL_VIDEODRIVER": "offscreen"}
    rec = [roadloop, "sim", "record", "--out", str(bags), "--scenarios", "racetrack,uturn", "--episodes", "4"]
    try:
        subprocess.run(rec, check=True, capture_output=True, env=env, timeout=240)
        subprocess.run([roadloop, "data", "build", str(bags), "--out", str(ds), "-q"], check=True, capture_output=True)
    except (subprocess.SubprocessError, OSError) as err:
        return None, f"simulator unavailable ({type(err).__name__}); synthetic drive bags"
    return ds, "simulator dataset (highway-env racetrack + u-turn, 4 episodes, expert driver)"


def run(bench: Bench) -> None:
    quick = bench.quick
    work = bench.workdir
    # about 1000 (quick) or 3000 train samples at 10 Hz, from 50 s drives
    drives = [SynthDrive(duration_s=50.0, seed=i) for i in range(3 if quick else 8)]
    data = build_drive_dataset(work / "drives", drives, build={"shard_size": 512})

    # 1) samples/s with 1 and 2 ranks, one thread each, same data and global batch
    rates, cpu_rates = {}, {}
    for n in (1, 2):
        cfg = _config(work / f"scale-{n}.yaml", MODEL, {"epochs": 1, "baseline_steps": 1})
        m = launch(cfg, data, work / f"scale-{n}", nproc=n)
        rates[n] = m["samples_per_s"]
        # samples one rank trains per CPU-second it gets: what each rank would do on a core of its own
        cpu_rates[n] = m["samples_per_s"] * m["train_seconds"] / n / m["train_cpu_seconds_rank0"]
    ratio = rates[2] / rates[1]
    load = os.getloadavg()[0]
    bench.figure("samples/s, 1 rank (1 thread)", rates[1], "samples/s")
    bench.figure("samples/s, 2 ranks (1 thread each)", rates[2], "samples/s")
    bench.figure(
        "DDP scaling 2 ranks / 1 rank (CPU, gloo)",
        ratio,
        "x",
        target=">= 1.6",
        ok=ratio >= 1.6,
        detail=f"wall clock; {os.cpu_count()} cores, load average {load:.1f} during the run",
    )
    bench.figure(
        "DDP scaling 2/1 from per-rank CPU time",
        2 * cpu_rates[2] / cpu_rates[1],
        "x",
        detail="2 x (samples per CPU-second of a rank, 2 ranks / 1 rank): DDP's compute overhead, "
        "not the machine's contention (time blocked in gloo is not CPU time)",
    )

    # 2) checkpoint save (DCP, at every epoch end) as a fraction of the epoch
    cfg = _config(work / "ckpt.yaml", MODEL, {"epochs": 2, "baseline_steps": 1})
    m = launch(cfg, data, work / "ckpt", nproc=2)
    frac = m["checkpoint_seconds"] / sum(m["epoch_seconds"])
    bench.figure(
        "checkpoint save time / epoch time",
        100 * frac,
        "%",
        target="< 10",
        ok=frac < 0.10,
        detail=f"{m['checkpoint_seconds']:.2f} s saving, {len(m['epoch_seconds'])} epochs of {m['steps'] // 2} steps",
    )

    # 3) a short 2-rank training run: validation L2@3s against constant velocity (and the ego-MLP)
    sim, what = (None, "quick mode: synthetic drive bags") if quick else _sim_dataset(work)
    if sim is None:
        sim = data
    cfg = _config(work / "short.yaml", MODEL, {"epochs": 4 if quick else 8, "baseline_steps": 300})
    m = launch(cfg, sim, work / "short", nproc=2)
    l2, cv, ego = m["val"]["l2_3s"], m["baselines"]["constant_velocity"]["l2_3s"], m["baselines"]["ego_mlp"]["l2_3s"]
    bench.figure("short run: val L2@3s, policy", l2, "m", target=f"< CV {cv:.3f}", ok=l2 < cv, detail=what)
    bench.figure("short run: val L2@3s, constant velocity", cv, "m")
    bench.figure("short run: val L2@3s, ego-status MLP", ego, "m")
    bench.figure("short run: 2-rank samples/s", m["samples_per_s"], "samples/s", detail=f"{m['steps']} steps")
