"""Typed training configuration, loaded from config/train.yaml."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from pathlib import Path

from roadloop_cluster.models.config import ModelConfig
from roadloop_core.config import dataclass_from_dict, load_yaml
from roadloop_core.errors import ConfigError

__all__ = ["FROM_DATASET", "OptimConfig", "RunConfig", "TrainConfig", "load_train_config", "with_run_sizes"]


@dataclass(frozen=True)
class OptimConfig:
    lr: float = 2e-3
    weight_decay: float = 0.01
    betas: list[float] = field(default_factory=lambda: [0.9, 0.999])
    warmup_steps: int = 50
    min_lr_ratio: float = 0.05
    grad_clip: float = 1.0
    speed_loss_weight: float = 0.5
    # rare events weigh more (the labels say which): braking -- the target speed this far below the speed
    # over the first waypoint step -- and lane changes -- the last waypoint this far to the side
    brake_weight: float = 0.0
    brake_mps: float = 1.0
    lane_change_weight: float = 0.0
    lane_change_m: float = 1.0

    def __post_init__(self) -> None:
        if min(self.brake_weight, self.lane_change_weight) < 0 or min(self.brake_mps, self.lane_change_m) <= 0:
            raise ValueError("brake_weight and lane_change_weight must be >= 0, brake_mps and lane_change_m > 0")


@dataclass(frozen=True)
class RunConfig:
    epochs: int = 8
    batch_size: int = 64
    seed: int = 0
    checkpoint_every: int = 100
    keep_checkpoints: int = 3
    threads_per_rank: int = 0
    amp: str = "bf16"
    comm_hook: str = "none"
    powersgd_rank: int = 1
    log_every: int = 10
    baseline_steps: int = 300
    collective_timeout_s: float = 300.0
    parallel: str = "ddp"
    local_sgd_period: int = 0
    local_sgd_start_step: int = 100
    local_sgd_intra_node: bool = True
    async_checkpoint: bool = True
    shuffle_window_shards: int = 4
    rendezvous_last_call_s: int = 30
    trace_samples: bool = False

    def __post_init__(self) -> None:
        if self.amp not in ("bf16", "fp16", "none"):
            raise ValueError(f"amp must be bf16, fp16 or none, got {self.amp!r}")
        if self.comm_hook not in ("none", "fp16", "powersgd"):
            raise ValueError(f"comm_hook must be none, fp16 or powersgd, got {self.comm_hook!r}")
        if self.epochs < 1 or self.batch_size < 1 or self.checkpoint_every < 1 or self.keep_checkpoints < 1:
            raise ValueError("epochs, batch_size, checkpoint_every and keep_checkpoints must be >= 1")
        if self.parallel not in ("ddp", "fsdp"):
            raise ValueError(f"parallel must be ddp or fsdp, got {self.parallel!r}")
        if self.local_sgd_period < 0 or self.local_sgd_start_step < 0 or self.shuffle_window_shards < 1:
            raise ValueError("local_sgd_period, local_sgd_start_step must be >= 0, shuffle_window_shards >= 1")
        if self.local_sgd_period and (self.parallel != "ddp" or self.comm_hook != "none"):
            raise ValueError("local_sgd_period needs parallel: ddp and comm_hook: none (it is a DDP comm hook itself)")
        if self.parallel == "fsdp" and self.comm_hook != "none":
            raise ValueError("comm_hook applies to parallel: ddp only")


@dataclass(frozen=True)
class TrainConfig:
    model: ModelConfig = field(default_factory=ModelConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    run: RunConfig = field(default_factory=RunConfig)


# Keys earlier versions had under `model:`; the dataset decides them now (ModelArgs.from_dataset).
FROM_DATASET = ("variant", "image_size", "horizon", "dt")


def load_train_config(path: Path) -> TrainConfig:
    """Read config/train.yaml; any unknown or ill-typed key is a ConfigError naming it."""
    data = load_yaml(path)
    if not data:
        raise ConfigError(f"{path}: empty training config")
    model = data.get("model")
    stale = [k for k in FROM_DATASET if isinstance(model, dict) and k in model]
    if stale:
        raise ConfigError(
            f"{path}: model.{stale[0]} is not set in the training config any more: the dataset decides the image "
            "size, the camera/state-only mode, the horizon and dt (remove "
            + ", ".join(f"model.{k}" for k in stale)
            + ")"
        )
    return dataclass_from_dict(TrainConfig, data, str(path))


def with_run_sizes(cfg: TrainConfig, epochs: int | None = None, batch_size: int | None = None) -> TrainConfig:
    """`cfg` with `run.epochs` / `run.batch_size` overridden where given (`roadloop train --epochs/--batch-size`):
    the file stays the one source of every other setting and of these when no override is given."""
    run = cfg.run
    if epochs is not None:
        run = replace(run, epochs=epochs)
    if batch_size is not None:
        run = replace(run, batch_size=batch_size)
    return replace(cfg, run=run)
