"""Typed configuration of `roadloop data build`: config/dataset.yaml (`observation:` + `build:`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roadloop_core.config import config_dir, dataclass_from_dict, dataclass_to_dict, load_yaml
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.errors import ConfigError

__all__ = ["BuildConfig", "DatasetConfig", "load_dataset_config"]


@dataclass(frozen=True)
class BuildConfig:
    """How bags become shards; the observation/label parameters live in ObservationSpec."""

    command: str = "command"  # registry role of the recorded driver command (label)
    command_slop_s: float = 0.1
    shard_size: int = 1024
    val_fraction: float = 0.2
    split_salt: str = "roadloop"
    workers: int = 0  # 0: min(CPU count, number of bags)

    def __post_init__(self) -> None:
        if self.shard_size <= 0:
            raise ValueError("shard_size must be > 0")
        if not 0.0 <= self.val_fraction < 1.0:
            raise ValueError("val_fraction must be in [0, 1)")
        if self.command_slop_s <= 0:
            raise ValueError("command_slop_s must be > 0")
        if self.workers < 0:
            raise ValueError("workers must be >= 0")


@dataclass(frozen=True)
class DatasetConfig:
    observation: ObservationSpec = field(default_factory=ObservationSpec)
    build: BuildConfig = field(default_factory=BuildConfig)

    def to_dict(self) -> dict[str, Any]:
        return dataclass_to_dict(self)


def load_dataset_config(path: Path | None = None) -> DatasetConfig:
    """Read config/dataset.yaml (or `path`); unknown keys and bad values name the file and field."""
    path = path or config_dir() / "dataset.yaml"
    data = load_yaml(path)
    if not data:  # an empty file is a mistake, not a request for defaults (the vehicle reads this spec too)
        raise ConfigError(f"{path}: empty; expected 'observation:' and 'build:' sections (see config/dataset.yaml)")
    unknown = sorted(set(data) - {"observation", "build"})
    if unknown:
        raise ConfigError(f"{path}: unknown section(s) {', '.join(unknown)}; known: observation, build")
    if not isinstance(data.get("observation"), dict):
        raise ConfigError(f"{path}: no 'observation:' mapping")
    return dataclass_from_dict(DatasetConfig, data, str(path))
