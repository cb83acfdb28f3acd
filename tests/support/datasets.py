"""Datasets built the way users build them: synthetic drive bags through the real dataset builder.

The trainer, export and benchmark tests train on these, so a change to the builder (its arrays,
index or statistics) reaches them as it would reach a user's training run.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from roadloop_cluster.data import BuildOptions, build_dataset
from roadloop_core.registry import load_registry
from tests.support.drive_bags import SynthDrive, write_synth_bag

__all__ = ["CONFIG", "build_drive_dataset", "dataset_config", "write_drives"]

CONFIG = Path(__file__).resolve().parents[2] / "config"


def dataset_config(path: Path, observation: dict[str, Any] | None = None, build: dict[str, Any] | None = None) -> Path:
    """config/dataset.yaml with some `observation:` / `build:` fields replaced, written to `path`."""
    doc = yaml.safe_load((CONFIG / "dataset.yaml").read_text())
    doc["observation"].update(observation or {})
    doc["build"].update(build or {})
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


def write_drives(folder: Path, drives: list[SynthDrive]) -> Path:
    """One bag per drive under `folder` (drive0, drive1, ...), on the topics of config/topics.yaml."""
    registry = load_registry(CONFIG / "topics.yaml")
    for i, drive in enumerate(drives):
        write_synth_bag(folder / f"drive{i}", drive, registry)
    return folder


def build_drive_dataset(
    root: Path,
    drives: list[SynthDrive],
    observation: dict[str, Any] | None = None,
    build: dict[str, Any] | None = None,
    *,
    workers: int = 1,
) -> Path:
    """ROOT/bags/ (the drives), ROOT/dataset.yaml (config/dataset.yaml with the overrides) and the
    dataset ROOT/dataset built from them; returns the dataset folder."""
    bags = write_drives(root / "bags", drives)
    config = dataset_config(root / "dataset.yaml", observation, build)
    options = BuildOptions(config_path=config, registry_path=CONFIG / "topics.yaml", workers=workers, progress=False)
    build_dataset([bags], root / "dataset", options)
    return root / "dataset"
