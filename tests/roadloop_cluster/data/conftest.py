"""Synthetic drive bags for the data tests (small images, 10 s drives) and helpers to damage them."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from tests.support.drive_bags import SynthDrive, write_synth_bag

DRIVE_S = 8.0


def truncate_bag(src: Path, dst: Path) -> Path:
    """A copy of bag `src` at `dst` whose storage file is cut in half (a crash mid-upload)."""
    shutil.copytree(src, dst)
    for f in dst.glob("*.mcap"):
        data = f.read_bytes()
        f.write_bytes(data[: len(data) // 2])
    return dst


@pytest.fixture(scope="session")
def bag_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three good camera bags under one folder (nested one level, like a recording tree)."""
    root = tmp_path_factory.mktemp("bags")
    for i in range(3):
        write_synth_bag(root / f"day{i % 2}" / f"drive{i}", SynthDrive(duration_s=DRIVE_S, seed=i))
    return root


@pytest.fixture(scope="session")
def no_camera_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real log without video: odometry, IMU, route and command only."""
    return write_synth_bag(
        tmp_path_factory.mktemp("nocam") / "drive", SynthDrive(duration_s=DRIVE_S, seed=7, camera=False)
    )


@pytest.fixture(scope="session")
def state_only_config(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    text = (repo_root / "config" / "dataset.yaml").read_text().replace("  camera: camera ", "  camera: null   ")
    assert "camera: null" in text
    path = tmp_path_factory.mktemp("cfg") / "dataset.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def small_shard_config(tmp_path_factory: pytest.TempPathFactory, repo_root: Path) -> Path:
    """config/dataset.yaml with 16-sample shards, so small datasets still have several shards."""
    text = (repo_root / "config" / "dataset.yaml").read_text().replace("shard_size: 1024", "shard_size: 16")
    assert "shard_size: 16" in text
    path = tmp_path_factory.mktemp("cfg16") / "dataset.yaml"
    path.write_text(text)
    return path


@pytest.fixture(scope="session")
def dataset(bag_root: Path, small_shard_config: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A camera dataset built from `bag_root` with 16-sample shards, by a 2-process pool."""
    from roadloop_cluster.data import BuildOptions, build_dataset

    out = tmp_path_factory.mktemp("ds") / "dataset"
    build_dataset([bag_root], out, BuildOptions(config_path=small_shard_config, workers=2, progress=False))
    return out
