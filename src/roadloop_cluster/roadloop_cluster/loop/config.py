"""The loop's configuration (`config/loop.yaml`): demo sizes per stage, typed and validated.

Everything else (topics, scenarios, dataset, training, vehicle, bridge, hub) is read by the
parts themselves from their own files under `config/`; the loop only names sizes and seeds.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roadloop_core.config import dataclass_from_dict, load_yaml
from roadloop_core.errors import ConfigError

__all__ = [
    "DaggerConfig",
    "DriveConfig",
    "EvaluationConfig",
    "GateConfig",
    "InterventionConfig",
    "LoopConfig",
    "RecordConfig",
    "TrainStageConfig",
    "load_loop_config",
]


@dataclass(frozen=True)
class RecordConfig:
    """Expert demonstrations recorded on the vehicle in round 1."""

    episodes: int = 6
    seed: int = 100
    scenarios: list[str] = field(default_factory=list)  # empty: the loop's scenarios


@dataclass(frozen=True)
class TrainStageConfig:
    """How the cluster trains: a base training config plus the demo's overrides of its `run:` section."""

    config: str = "train.yaml"
    nproc: int = 2
    epochs: int = 4
    batch_size: int = 0  # 0: keep the training config's
    # rounds 2+: production: fine-tune production's weights (`roadloop train --init-from`; the round's candidate
    # when nothing was published) on the aggregated data | scratch: retrain from random weights
    init_from: str = "production"
    finetune_epochs: int = 0  # epochs of a fine-tune (0: `epochs`)

    def __post_init__(self) -> None:
        if self.init_from not in ("production", "scratch"):
            raise ValueError(f"train.init_from must be production or scratch, got {self.init_from!r}")
        if self.finetune_epochs < 0:
            raise ValueError("train.finetune_epochs must be >= 0")


@dataclass(frozen=True)
class GateConfig:
    """Closed-loop gate: candidate and incumbent drive the same episodes; the candidate is published only
    when the lower bound of the paired bootstrap confidence interval of its DS gain is above `margin`."""

    episodes: int = 32
    seed: int = 7
    baseline: str = "lanekeep"
    margin: float = 0.0  # DS points
    confidence: float = 0.95
    resamples: int = 10_000
    bootstrap_seed: int = 0  # the resampling is seeded: the same evaluations always give the same verdict


@dataclass(frozen=True)
class EvaluationConfig:
    """Held-out episodes for the final evaluation of the loop's model: never trained or gated on."""

    episodes: int = 48
    seed: int = 21
    run: bool = False  # true: a final stage drives the loop's model, the expert, lanekeep and constant on them


@dataclass(frozen=True)
class DriveConfig:
    """The installed model driving closed loop on the vehicle after deployment."""

    episodes: int = 4
    seed: int = 2000


@dataclass(frozen=True)
class InterventionConfig:
    """Round 2: episodes the policy does not finish cleanly (the simulator's `success`) become interventions."""

    episodes: int = 6
    seed: int = 3000
    max_corrections: int = 6  # at most this many failed episodes are taken over by the expert and recorded


@dataclass(frozen=True)
class DaggerConfig:
    """Rounds 2+: the deployed policy drives, the simulator's privileged expert labels every state it visits.

    In round n the expert drives each 1 s block with probability beta * beta_decay^(n-2) (the DAgger
    mixture: early rounds stay closer to the expert's states). Round n plays base seeds
    seed + (n-2) * seed_stride onwards (each base seed holds 8 episodes per scenario).
    """

    episodes: int = 0  # 0: no DAgger stage
    seed: int = 31
    seed_stride: int = 1
    beta: float = 0.5
    beta_decay: float = 0.5

    def __post_init__(self) -> None:
        if self.episodes < 0 or self.seed_stride < 1:
            raise ValueError("dagger.episodes must be >= 0 and dagger.seed_stride >= 1")
        if not (0.0 <= self.beta <= 1.0 and 0.0 <= self.beta_decay <= 1.0):
            raise ValueError("dagger.beta and dagger.beta_decay must be within [0, 1]")

    def round_seed(self, n: int) -> int:
        return self.seed + (n - 2) * self.seed_stride

    def round_beta(self, n: int) -> float:
        return self.beta * self.beta_decay ** (n - 2)


MAX_ROUNDS = 8


@dataclass(frozen=True)
class LoopConfig:
    """`config/loop.yaml`."""

    vehicle: str = "demo-car-1"
    rounds: int = 2
    scenarios: list[str] = field(default_factory=lambda: ["highway_light"])  # a name in config/scenarios.yaml
    dataset_config: str = "dataset.yaml"
    record: RecordConfig = field(default_factory=RecordConfig)
    train: TrainStageConfig = field(default_factory=TrainStageConfig)
    gate: GateConfig = field(default_factory=GateConfig)
    drive: DriveConfig = field(default_factory=DriveConfig)
    intervention: InterventionConfig = field(default_factory=InterventionConfig)
    dagger: DaggerConfig = field(default_factory=DaggerConfig)
    evaluation: EvaluationConfig = field(default_factory=EvaluationConfig)
    episode_jobs: int = 0  # `roadloop sim` episodes run in this many worker processes (0: one per core)
    hub_start_timeout_s: float = 60.0
    stage_timeout_s: float = 1800.0

    def __post_init__(self) -> None:
        if not 1 <= self.rounds <= MAX_ROUNDS:
            raise ValueError(f"rounds must be within 1..{MAX_ROUNDS}, got {self.rounds}")
        if not self.scenarios:
            raise ValueError("scenarios must name at least one scenario")
        for name, value in (
            ("record.episodes", self.record.episodes),
            ("gate.episodes", self.gate.episodes),
            ("drive.episodes", self.drive.episodes),
            ("evaluation.episodes", self.evaluation.episodes),
            ("train.nproc", self.train.nproc),
            ("train.epochs", self.train.epochs),
            ("gate.resamples", self.gate.resamples),
        ):
            if value < 1:
                raise ValueError(f"{name} must be at least 1, got {value}")
        if self.episode_jobs < 0:
            raise ValueError(f"episode_jobs must be 0 (one worker per core) or more, got {self.episode_jobs}")
        if self.intervention.episodes < 0:
            raise ValueError("intervention.episodes must be >= 0 (0: no fleet drive and corrections)")
        if not 0.0 < self.gate.confidence < 1.0:
            raise ValueError(f"gate.confidence must be between 0 and 1 (e.g. 0.95), got {self.gate.confidence}")

    def resolve(self, name: str, base: Path) -> Path:
        """A config file the loop hands to a part: absolute as given, else under the config folder `base`."""
        path = Path(name)
        return path if path.is_absolute() else base / path


def load_loop_config(path: Path) -> LoopConfig:
    """Read `config/loop.yaml`; a bad key or value is a LoopError naming the file and the field."""
    data: dict[str, Any] = load_yaml(path)
    if not data:  # an empty file is a mistake, not a request for the defaults
        raise ConfigError(f"{path}: empty; expected a 'loop:' section (see config/loop.yaml)")
    section = data.get("loop", data)
    if not isinstance(section, dict):
        raise ConfigError(f"{path}: 'loop:' must be a mapping")
    return dataclass_from_dict(LoopConfig, section, str(path))
