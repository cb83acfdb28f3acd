"""The GPU training paths, where a CUDA GPU is visible (otherwise this area prints why and adds no figure).

Real `torchrun` launches (roadloop_cluster.train.launch) of one rank on the same data and default model
(config/train.yaml's), side by side: cuda:0 in fp32 (`amp: none`) and bf16 autocast, at the default
global batch of 64 and at 512, against one CPU rank given every core of the machine (the GPU hidden
from that launch with CUDA_VISIBLE_DEVICES). The figure is `samples_per_s` of metrics.json: optimizer
steps only, data loading included (the shards are streamed as in every run), start-up and validation
excluded. The data is synthetic drive bags built by the real dataset builder, as in bench_train.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import torch

from benchmarks.bench_train import MODEL, _config
from benchmarks.common import Bench
from roadloop_cluster.train.launch import launch
from tests.support.datasets import build_drive_dataset
from tests.support.drive_bags import SynthDrive


@contextmanager
def _gpu_hidden() -> Iterator[None]:
    """Launches inside see no GPU (the rank then trains on the CPU)."""
    old = os.environ.get("CUDA_VISIBLE_DEVICES")
    os.environ["CUDA_VISIBLE_DEVICES"] = ""
    try:
        yield
    finally:
        if old is None:
            del os.environ["CUDA_VISIBLE_DEVICES"]
        else:
            os.environ["CUDA_VISIBLE_DEVICES"] = old


def _rate(work: Path, data: Path, name: str, run: dict[str, Any]) -> tuple[float, str]:
    """(samples/s, device) of one rank; epochs scale with the batch so that every launch takes ~140 steps."""
    epochs = 3 * max(1, run.get("batch_size", 64) // 64)
    cfg = _config(work / f"{name}.yaml", MODEL, {"epochs": epochs, "baseline_steps": 1} | run)
    m = launch(cfg, data, work / name, nproc=1)
    return float(m["samples_per_s"]), str(m["device"])


def run(bench: Bench) -> None:
    if not torch.cuda.is_available():
        print(f"{bench.area:>8} | no CUDA GPU visible to torch {torch.__version__}: no GPU figures on this machine")
        return
    work = bench.workdir
    gpu = torch.cuda.get_device_name(0)
    drives = [SynthDrive(duration_s=50.0, seed=i) for i in range(3 if bench.quick else 8)]
    data = build_drive_dataset(work / "drives", drives, build={"shard_size": 512})

    rates: dict[str, float] = {}
    for batch in (64, 512):
        for amp in ("none", "bf16"):
            key = f"{amp}-{batch}"
            rates[key], device = _rate(work, data, key, {"amp": amp, "batch_size": batch})
            assert device.startswith("cuda"), f"the {key} launch trained on {device}, not the GPU"
    with _gpu_hidden():
        cores = os.cpu_count() or 1
        rates["cpu"], device = _rate(work, data, "cpu", {"amp": "none", "threads_per_rank": cores})
        assert device == "cpu", f"the CPU launch trained on {device}"

    for batch in (64, 512):
        bench.figure(f"samples/s, 1 rank on {gpu}, fp32, batch {batch}", rates[f"none-{batch}"], "samples/s")
        bench.figure(f"samples/s, 1 rank on {gpu}, bf16 AMP, batch {batch}", rates[f"bf16-{batch}"], "samples/s")
    bench.figure(
        "GPU bf16 / fp32 samples/s (batch 512)",
        rates["bf16-512"] / rates["none-512"],
        "x",
        detail="the default model is small: at batch 64 a step is bound by kernel launches, not arithmetic",
    )
    bench.figure(
        "GPU (bf16, batch 64) / 1 CPU rank on every core",
        rates["bf16-64"] / rates["cpu"],
        "x",
        detail=f"CPU rank: {rates['cpu']:.0f} samples/s on {cores} threads, fp32, batch 64",
    )
