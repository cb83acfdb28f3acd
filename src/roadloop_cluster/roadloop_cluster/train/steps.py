"""The pieces the training entry (train.py) calls, each a small function of explicit inputs."""

from __future__ import annotations

import json
import math
import os
import pickle
import resource
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from roadloop_cluster.models.config import ModelArgs
from roadloop_cluster.models.policy import DrivingPolicy, build_policy
from roadloop_cluster.models.prior import ctra
from roadloop_cluster.train.checkpoint import Checkpointer, latest_checkpoint, load_checkpoint
from roadloop_cluster.train.config import OptimConfig, TrainConfig
from roadloop_cluster.train.data import Batch, BatchStream, DatasetInfo, ShardSplit, SplitData
from roadloop_cluster.train.errors import TrainError
from roadloop_cluster.train.metrics import (
    ErrorSums,
    evaluate_baselines,
    metrics_from_sums,
    step_scale,
    train_ego_baseline,
)
from roadloop_cluster.train.parallelize import Dist, all_reduce_sum, autocast
from roadloop_core.contract.tensors import EGO_STATE, EGO_STATE_ARRAY, TARGET_SPEED, WAYPOINTS, WAYPOINTS_ARRAY
from roadloop_core.fsio import atomic_write_bytes

__all__ = [
    "FAILURE_FILE",
    "Logger",
    "Progress",
    "SampleTrace",
    "baselines",
    "build_model",
    "build_optimizer",
    "checkpoint",
    "diverged",
    "forward_loss",
    "init_weights",
    "pack",
    "rare_event_weights",
    "report_nonfinite",
    "resume",
    "unpack",
    "validate",
    "write_outputs",
]

FAILURE_FILE = "failure.json"


def build_model(args: ModelArgs, train: ShardSplit, info: DatasetInfo) -> DrivingPolicy:
    """The policy for `args`, its step scale the training labels' mean displacement per step (of what the
    network adds to its kinematic prior, with one), the prior de-normalising with the training statistics."""
    waypoints = train.array(WAYPOINTS_ARRAY.name)
    if args.config.prior == "none":
        return build_policy(args, step_scale(waypoints))
    raw = torch.from_numpy(train.array(EGO_STATE_ARRAY.name)).double()
    prior = ctra(raw, args.horizon, args.dt).numpy()
    return build_policy(args, step_scale(waypoints - prior), info.stat(EGO_STATE_ARRAY.name))


def build_optimizer(
    model: nn.Module, cfg: OptimConfig, total_steps: int
) -> tuple[torch.optim.AdamW, torch.optim.lr_scheduler.LambdaLR]:
    """AdamW (no decay on biases and norms) with linear warm-up then cosine to lr * min_lr_ratio."""
    decay = [p for p in model.parameters() if p.ndim >= 2]
    no_decay = [p for p in model.parameters() if p.ndim < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    b1, b2 = cfg.betas
    optim = torch.optim.AdamW(groups, lr=cfg.lr, betas=(b1, b2))
    warm = max(1, cfg.warmup_steps)

    def factor(step: int) -> float:
        if step < warm:
            return (step + 1) / warm
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))

    return optim, torch.optim.lr_scheduler.LambdaLR(optim, factor)


def forward_loss(model: nn.Module, b: Batch, d: Dist, cfg: TrainConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-sample loss (L1 on waypoints in metres + weighted L1 on target speed) and predicted waypoints."""
    with autocast(d, cfg.run.amp):
        wp, speed = model(b.inputs)
    per_sample = (wp.float() - b.targets[WAYPOINTS.name]).abs().mean(dim=(1, 2))
    speed_error = (speed.float() - b.targets[TARGET_SPEED.name]).abs()[:, 0]
    per_sample = per_sample + cfg.optim.speed_loss_weight * speed_error
    o = cfg.optim
    if o.brake_weight or o.lane_change_weight:
        policy: Any = getattr(model, "module", model)  # DDP wraps the policy
        per_sample = per_sample * rare_event_weights(b, float(policy.args.dt), o)
    return per_sample, wp


def rare_event_weights(b: Batch, dt: float, o: OptimConfig) -> torch.Tensor:
    """Per-sample loss weights, 1 + brake_weight on braking samples + lane_change_weight on lane changes."""
    wp, target = b.targets[WAYPOINTS.name], b.targets[TARGET_SPEED.name][:, 0]
    braking = (wp[:, 0].norm(dim=1) / dt - target) > o.brake_mps
    changing = wp[:, -1, 1].abs() > o.lane_change_m
    weights: torch.Tensor = 1.0 + o.brake_weight * braking.float() + o.lane_change_weight * changing.float()
    return weights


def init_weights(model: nn.Module, path: Path) -> None:
    """Start from the weights of an earlier run (`roadloop train --init-from`: RUN folder or its model.pt);
    they include its step scale (and prior statistics): a fine-tune keeps the scale it learnt at."""
    file = path / "model.pt" if path.is_dir() else path
    try:
        state = torch.load(file, map_location="cpu", weights_only=True)
    except (OSError, RuntimeError, pickle.UnpicklingError) as err:
        raise TrainError(f"--init-from {file}: cannot read the weights ({err})") from err
    own = model.state_dict()
    bad = sorted(set(own) ^ set(state)) + sorted(k for k in own if k in state and own[k].shape != state[k].shape)
    if bad:
        raise TrainError(
            f"--init-from {file}: not this model's weights (keys or shapes differ: {', '.join(bad[:4])}); "
            "the dataset's inputs and the model config must match the run it came from"
        )
    model.load_state_dict(state)


def diverged(stats: torch.Tensor, loss_scaled: bool) -> bool:
    """Whether the step's (loss sum, gradient norm), reduced over ranks, mean training must stop. Under fp16
    loss scaling an inf/NaN gradient norm is the scaler's overflow: `scaler.step` skips that step and lowers
    the scale, so only a non-finite loss stops such a run."""
    loss_sum, grad_norm = stats[0], stats[1]
    return not bool(torch.isfinite(loss_sum)) or (not loss_scaled and not bool(torch.isfinite(grad_norm)))


def report_nonfinite(run_dir: Path, step: int, per_sample: torch.Tensor, b: Batch, data: ShardSplit, d: Dist) -> None:
    """Name the step and the shard rows whose loss is not finite; rank 0 also names the last checkpoint."""
    bad = b.index[~torch.isfinite(per_sample.detach().cpu()).numpy()]
    where = data.describe(bad) if len(bad) else "no sample of this rank (gradients became non-finite)"
    msg = f"non-finite loss at step {step + 1} (rank {d.rank}): {where}"
    atomic_write_bytes(run_dir / f"failure-rank{d.rank}.json", json.dumps({"step": step + 1, "message": msg}).encode())


@torch.no_grad()
def validate(model: DrivingPolicy, val: ShardSplit, d: Dist, cfg: TrainConfig) -> dict[str, float]:
    """Open-loop metrics on the val split, each rank taking every world_size-th sample, summed over ranks.
    Every rank runs the same number of batches (a sharded model's forward is a collective)."""
    model.eval()
    sums = ErrorSums(model.args.horizon)
    mine = np.arange(d.rank, len(val), d.world_size, dtype=np.int64)
    batches = max(1, math.ceil(math.ceil(len(val) / d.world_size) / 256))
    for part in np.array_split(mine, batches):
        b = val.batch(part).to(d.device)
        _, wp = forward_loss(model, b, d, cfg)
        sums.add(wp, b.targets[WAYPOINTS.name])
    model.train()
    return metrics_from_sums(all_reduce_sum(sums.sums, d), model.args.dt)


def baselines(run_dir: Path, info: DatasetInfo, cfg: TrainConfig, args: ModelArgs) -> dict[str, dict[str, float]]:
    """Constant velocity and the ego-status MLP on the val split, computed once per run (by the launcher, or
    rank 0 when the ranks were started by hand); they read the ego state and labels only, into memory."""
    path = run_dir / "baselines.json"
    if path.is_file():
        return dict(json.loads(path.read_text()))
    train, val = SplitData(info, "train", (EGO_STATE,)), SplitData(info, "val", (EGO_STATE,))
    ego = train_ego_baseline(train, args.horizon, cfg.run.baseline_steps, cfg.run.seed)
    out = evaluate_baselines(val, ego, args.horizon, args.dt)
    atomic_write_bytes(path, json.dumps(out, indent=2).encode())
    return out


@dataclass
class Progress:
    """Where training stands (checkpointed: step, history) and how long things took (this attempt)."""

    step: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    resumed_from: str | None = None
    train_s: float = 0.0
    cpu_s: float = 0.0
    ckpt_s: float = 0.0
    samples: int = 0
    epoch_s: list[float] = field(default_factory=list)

    def summary(self, d: Dist, base: dict[str, dict[str, float]]) -> dict[str, Any]:
        val, cv = self.history[-1], base.get("constant_velocity", {})
        return {
            "val": val,
            "baselines": base,
            # metres the policy is below constant velocity on the val split (positive: better), per metric
            "gain_over_constant_velocity": {k: cv[k] - val[k] for k in cv if k in val},
            "history": self.history,
            "world_size": d.world_size,
            "steps": self.step,
            "samples_per_s": self.samples / max(self.train_s, 1e-9),
            "samples_this_attempt": self.samples,
            "train_seconds": self.train_s,
            "train_cpu_seconds_rank0": self.cpu_s,
            "checkpoint_seconds": self.ckpt_s,
            "epoch_seconds": self.epoch_s,
            "device": str(d.device),
            "resumed_from": self.resumed_from,
            "peak_rss_mb_rank0": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,  # Linux: KiB
        }


Sched = torch.optim.lr_scheduler.LambdaLR


def resume(out: Path, model: nn.Module, optim: torch.optim.Optimizer, sched: Sched, stream: BatchStream) -> Progress:
    """Continue from RUN/checkpoints/latest if there is one (model, optimizer, scheduler, data, RNG)."""
    last = latest_checkpoint(out)
    if last is None:
        return Progress()
    template = {"step": 0, "data": b"", "sched": b"", "history": b""}
    state = load_checkpoint(last, model, optim, template)
    stream.load_state_dict(unpack(state["data"]))
    sched.load_state_dict(unpack(state["sched"]))
    return Progress(step=int(state["step"]), history=unpack(state["history"]), resumed_from=last.name)


def checkpoint(
    ckpt: Checkpointer, p: Progress, model: nn.Module, optim: torch.optim.Optimizer, sched: Sched, stream: BatchStream
) -> None:
    """Save (asynchronously when configured); the time the training thread spends here is the stall."""
    t = time.perf_counter()
    trainer = {"step": p.step, "data": pack(stream.state_dict()), "sched": pack(sched.state_dict())}
    ckpt.save(p.step, model, optim, trainer | {"history": pack(p.history)})
    p.ckpt_s += time.perf_counter() - t


class SampleTrace:
    """With `run.trace_samples`: every step's sample ids, one JSON line per step in
    RUN/trace/samples-<pid>.jsonl (line-buffered: what a SIGKILL interrupts is still on disk). It is how
    the tests check exactly-once epochs across kills and elastic world-size changes."""

    def __init__(self, run_dir: Path, d: Dist, enabled: bool) -> None:
        self.file: Any = None
        self.d = d
        if enabled:
            (run_dir / "trace").mkdir(parents=True, exist_ok=True)
            self.file = open(run_dir / "trace" / f"samples-{os.getpid()}.jsonl", "a", buffering=1)  # noqa: SIM115

    def step(self, epoch: int, step: int, idx: np.ndarray) -> None:
        if self.file is not None:
            rec = {"t": time.time(), "pid": os.getpid(), "rank": self.d.rank, "world": self.d.world_size}
            self.file.write(json.dumps(rec | {"epoch": epoch, "step": step, "ids": idx.tolist()}) + "\n")


def pack(obj: Any) -> bytes:
    return pickle.dumps(obj)


def unpack(blob: Any) -> Any:
    return pickle.loads(blob)


class Logger:
    """TensorBoard scalars and a progress bar, on rank 0 only."""

    def __init__(self, run_dir: Path, d: Dist, total: int, done: int) -> None:
        self.enabled = d.is_main
        self.tb: Any = None
        self.bar: Any = None
        if self.enabled:
            from torch.utils.tensorboard import SummaryWriter
            from tqdm import tqdm

            self.tb = SummaryWriter(str(run_dir / "tb"))
            self.bar = tqdm(total=total, initial=done, desc="train", unit="step", dynamic_ncols=True)
        self.t0, self.samples = time.perf_counter(), 0

    def step(self, step: int, stats: torch.Tensor, lr: float, d: Dist, batch: int, log_every: int) -> None:
        """stats = (sum of per-sample losses, sum of grad norms) over the ranks."""
        loss, gnorm = float(stats[0]) / batch, float(stats[1]) / d.world_size
        self.samples += batch
        if not self.enabled:
            return
        self.bar.update(1)
        if step % log_every == 0:
            rate = self.samples / max(time.perf_counter() - self.t0, 1e-9)
            for k, v in {"loss": loss, "lr": lr, "grad_norm": gnorm, "samples_per_s": rate}.items():
                self.tb.add_scalar(f"train/{k}", v, step)
            self.bar.set_postfix(loss=f"{loss:.3f}", lr=f"{lr:.2e}")
            self.t0, self.samples = time.perf_counter(), 0

    def epoch(self, epoch: int, step: int, val: dict[str, float], base: dict[str, dict[str, float]]) -> None:
        if not self.enabled:
            return
        for k, v in val.items():
            self.tb.add_scalar(f"val/{k}", v, step)
        for name, m in base.items():
            for k, v in m.items():
                self.tb.add_scalar(f"baseline_{name}/{k}", v, step)
        cv = base["constant_velocity"].get("l2_3s", float("nan"))
        self.bar.write(f"epoch {epoch}: " + " ".join(f"{k}={v:.3f}" for k, v in val.items()) + f" (CV l2_3s={cv:.3f})")

    def close(self) -> None:
        if self.enabled:
            self.bar.close()
            self.tb.close()


def write_outputs(
    run_dir: Path,
    model: DrivingPolicy,
    weights: dict[str, torch.Tensor],
    cfg: dict[str, Any],
    info: DatasetInfo,
    metrics: Any,
) -> None:
    """RUN/model.pt (`weights`, whole: the same file under DDP and FSDP2), RUN/run.json (what export needs)
    and RUN/metrics.json, each atomic."""
    import io

    buf = io.BytesIO()
    torch.save(weights, buf)
    atomic_write_bytes(run_dir / "model.pt", buf.getvalue())
    run = {
        "config": cfg,
        "dataset": {"root": str(info.root.resolve()), "dataset_id": info.dataset_id},
        "observation": info.observation.to_dict(),  # with the config, what the model is built from
        "normalization": {k: {"mean": m, "std": s} for k, (m, s) in info.normalization().items()},
        "step_scale": model.scale,
    }
    atomic_write_bytes(run_dir / "run.json", json.dumps(run, indent=2).encode())
    atomic_write_bytes(run_dir / "metrics.json", json.dumps(metrics, indent=2).encode())
    plot_curves(run_dir / "curves.png", metrics["history"], metrics["baselines"])


def plot_curves(path: Path, history: list[dict[str, Any]], base: dict[str, dict[str, float]]) -> None:
    """Validation L2@1/2/3s per epoch with both baselines as dashed lines (a glance beats metrics.json)."""
    import io

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = [k for k in ("l2_1s", "l2_2s", "l2_3s", "ade") if k in history[-1]]
    fig, axes = plt.subplots(1, len(keys), figsize=(3.2 * len(keys), 3), squeeze=False)
    epochs = [h["epoch"] for h in history]
    for ax, key in zip(axes[0], keys, strict=True):
        ax.plot(epochs, [h[key] for h in history], "o-", label="policy")
        for (name, m), style in zip(base.items(), ("--", ":", "-."), strict=False):
            if key in m:
                ax.axhline(m[key], linestyle=style, color="gray", label=name.replace("_", " "))
        ax.set_title(f"val {key} (m)")
        ax.set_xlabel("epoch")
    axes[0][0].legend(fontsize=7)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    plt.close(fig)
    atomic_write_bytes(path, buf.getvalue())
