"""Training benchmarks: streamed vs in-memory batches, rank memory as the data grows, DDP scaling on CPU,
checkpoint stall (asynchronous vs blocking), and a short run against constant velocity.

Every figure comes from real `torchrun` launches (roadloop_cluster.train.launch) on this machine;
the 1-rank and 2-rank runs use the same data and config side by side, one intra-op thread per rank.
The data is synthetic drive bags (`tests.support`) built by the real dataset builder with
config/dataset.yaml. Set ROADLOOP_BENCH_SIM_DATASET to a dataset from `roadloop sim record` +
`roadloop data build` to make the last figure use simulator data; otherwise it records one itself
when the simulator is installed, else uses the drive-bag dataset (the figure's detail says which).
"""

from __future__ import annotations

import json
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch
import yaml

from benchmarks.common import Bench
from roadloop_cluster.models import ModelArgs, ModelConfig
from roadloop_cluster.train import steps
from roadloop_cluster.train.config import TrainConfig
from roadloop_cluster.train.data import BatchStream, ShardSplit, SplitData, read_dataset_info
from roadloop_cluster.train.launch import launch
from roadloop_cluster.train.parallelize import Dist
from roadloop_core.contract.tensors import model_inputs
from tests.support.datasets import build_drive_dataset
from tests.support.drive_bags import SynthDrive

# config/train.yaml's model; its input size, horizon and dt come from the dataset (config/dataset.yaml's)
MODEL = {"encoder": "small", "channels": [16, 32, 64, 64], "state_hidden": 64, "hidden": 128}


def _config(path: Path, model: dict[str, Any], run: dict[str, Any]) -> Path:
    base = {"batch_size": 64, "checkpoint_every": 10_000, "log_every": 50, "threads_per_rank": 1}
    path.write_text(yaml.safe_dump({"model": model, "run": base | run}))
    return path


TINY = {"encoder": "small", "channels": [8, 16], "state_hidden": 16, "hidden": 32}


def _throughput(data: Path, epochs: int) -> tuple[float, dict[str, float]]:
    """Samples/s of training steps (default model, one thread, this process) fed from the in-memory split
    and from the streamed shards. The two paths alternate step by step on the same batches (each step timed
    whole: batch, forward, backward, optimizer), so that the load of a shared machine hits both alike."""
    torch.set_num_threads(1)
    info = read_dataset_info(data)
    inputs = model_inputs(info.observation)
    streamed = ShardSplit(info, "train", inputs)
    loaded = SplitData(info, "train", inputs)  # what each rank held before training streamed
    cfg = TrainConfig(model=ModelConfig(**MODEL))  # type: ignore[arg-type]
    margs = ModelArgs.from_dataset(cfg.model, info.index)
    stream = BatchStream(streamed, 64, 0, 1, seed=0)
    d = Dist(0, 1, 0, 1, torch.device("cpu"), "gloo", 1)
    torch.manual_seed(0)
    model = steps.build_model(margs, streamed, info)
    optim, _ = steps.build_optimizer(model, cfg.optim, 10_000)
    ratios, reads = [], {"memory": 0.0, "stream": 0.0}
    for _ in range(epochs):
        for n, idx in enumerate(stream.epoch_batches()):
            spent = {}
            order = (("memory", loaded), ("stream", streamed))
            for name, split in order[:: 1 if n % 2 == 0 else -1]:
                t = time.perf_counter()
                b = split.batch(idx)
                reads[name] += time.perf_counter() - t
                optim.zero_grad(set_to_none=True)
                per_sample, _ = steps.forward_loss(model, b, d, cfg)
                per_sample.mean().backward()  # type: ignore[no-untyped-call]
                optim.step()
                spent[name] = time.perf_counter() - t
            ratios.append(spent["memory"] / spent["stream"])
        stream.next_epoch()
    # the median of the paired per-step ratios: a load spike on the shared machine lands in one pair only
    per_batch_ms = {k: 1000 * v / len(ratios) for k, v in reads.items()}
    return statistics.median(ratios), per_batch_ms


def _replicated(src: Path, dst: Path, times: int) -> Path:
    """`src` with its train split `times` over (hard links to the same shards under new names): `times` x the
    rows a rank streams through in an epoch, the val split unchanged."""
    shutil.copytree(src, dst, copy_function=os.link)
    index = json.loads((dst / "index.json").read_text())
    train = index["splits"]["train"]
    shards = []
    for k in range(times):
        for sh in train["shards"]:
            name = Path(sh["file"])
            copy = name.with_name(f"{name.stem}-r{k}{name.suffix}")
            if k:
                os.link(dst / name, dst / copy)
            shards.append({**sh, "file": str(name if k == 0 else copy)})
    index["count"] += (times - 1) * train["count"]
    train["shards"], train["count"] = shards, times * train["count"]
    (dst / "index.json").unlink()  # a hard link to src's: replace it, never write through it
    (dst / "index.json").write_text(json.dumps(index))
    return dst


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

    # 1) the data path: streamed from the shards vs held in memory, same model, steps and batches
    ratio, batch_ms = _throughput(data, 3 if quick else 5)
    bench.figure(
        "training samples/s streamed / in-memory",
        ratio,
        "x",
        target=">= 0.95",
        ok=ratio >= 0.95,
        detail=f"default model, 1 thread, the paths alternating step by step (median of paired steps); building a "
        f"batch of 64: {batch_ms['stream']:.1f} ms streamed vs {batch_ms['memory']:.1f} ms in memory (page cache)",
    )

    # 2) a rank's peak memory as the data grows: 1x and 10x the training rows, one epoch each
    big = _replicated(data, work / "drives-10x", 10)
    rss = {}
    for name, ds in (("1x", data), ("10x", big)):
        cfg = _config(work / f"rss-{name}.yaml", TINY, {"epochs": 1, "baseline_steps": 1})
        rss[name] = launch(cfg, ds, work / f"rss-{name}", nproc=1)["peak_rss_mb_rank0"]
    n = read_dataset_info(data).index.splits["train"].count
    frame = SplitData(read_dataset_info(data), "train", model_inputs(read_dataset_info(data).observation))
    held = sum(a.nbytes for a in frame.arrays.values()) / n
    bench.figure(
        "rank peak RSS, 10x data / 1x data",
        rss["10x"] / rss["1x"],
        "x",
        target="<= 1.2",
        ok=rss["10x"] / rss["1x"] <= 1.2,
        detail=f"{rss['1x']:.0f} MB vs {rss['10x']:.0f} MB on {n} vs {10 * n} samples; in memory the split alone "
        f"would be {held * n / 2**20:.0f} MB vs {held * 10 * n / 2**20:.0f} MB",
    )
    del frame

    # 3) samples/s with 1 and 2 ranks, one thread each, same data and global batch
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

    # 4) checkpoint stall: time the training thread spends checkpointing (at every epoch end), as a share of
    # the epochs' time; asynchronous (the default) and blocking side by side
    stall = {}
    for mode, on in (("async", True), ("blocking", False)):
        cfg = _config(work / f"ckpt-{mode}.yaml", MODEL, {"epochs": 2, "baseline_steps": 1, "async_checkpoint": on})
        m = launch(cfg, data, work / f"ckpt-{mode}", nproc=2)
        stall[mode] = 100 * m["checkpoint_seconds"] / sum(m["epoch_seconds"])
    bench.figure(
        "checkpoint stall % of epoch (async DCP)",
        stall["async"],
        "%",
        target="<= 2",
        ok=stall["async"] <= 2,
        detail=f"blocking save side by side: {stall['blocking']:.2f} %; 2 ranks, 2 epochs, one checkpoint per epoch",
    )

    # 5) a short 2-rank training run: validation L2@3s against constant velocity (and the ego-MLP)
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
