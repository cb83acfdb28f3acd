"""Fixtures shared by the data, training and export tests: small datasets built by the real builder from drive
bags, a car's own highway log, tiny configs, a world of one."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from roadloop_core.registry import load_registry
from tests.support.datasets import build_drive_dataset
from tests.support.drive_bags import SynthDrive
from tests.support.real_bags import REAL_LOG_CONFIG, RealDrive, write_real_bag

# The model's image size, horizon and dt come from the dataset: these differ from config/dataset.yaml's
# (64x64, 8) on purpose, and no training config says them.
OBSERVATION = {"image_width": 48, "image_height": 32, "label_horizon": 6}
SHARD_SIZE = 64
TINY_MODEL = {"encoder": "small", "channels": [8, 16], "state_hidden": 16, "hidden": 32}


def _drives(camera: bool) -> list[SynthDrive]:
    """Four 10 s drives: about 210 train and 70 val samples (6 steps of 32 per epoch)."""
    return [SynthDrive(duration_s=10.0, seed=i, camera=camera, image_width=64, image_height=48) for i in range(4)]


@pytest.fixture(scope="session")
def tiny_model() -> dict[str, object]:
    """The smallest model config the trainer accepts (a fresh copy per use)."""
    return dict(TINY_MODEL)


@pytest.fixture(scope="session")
def camera_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Camera drives (64x48 frames) built into 48x32 model images with a 6-waypoint horizon."""
    root = tmp_path_factory.mktemp("ds-camera")
    return build_drive_dataset(root, _drives(True), OBSERVATION, {"shard_size": SHARD_SIZE})


@pytest.fixture(scope="session")
def state_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Drives without video, built state-only (no image array)."""
    root = tmp_path_factory.mktemp("ds-state")
    return build_drive_dataset(root, _drives(False), {**OBSERVATION, "camera": None}, {"shard_size": SHARD_SIZE})


@pytest.fixture
def write_config(tmp_path: Path) -> Callable[..., Path]:
    """write_config(model={...overrides}, run={...}, optim={...}) -> path of a tiny train.yaml."""

    def write(model: dict[str, object] | None = None, **sections: dict[str, object]) -> Path:
        doc = {
            "model": {**TINY_MODEL, **(model or {})},
            "optim": {"lr": 0.003, "warmup_steps": 4, **sections.get("optim", {})},
            "run": {"epochs": 2, "batch_size": 32, "checkpoint_every": 2, "log_every": 2, "baseline_steps": 20}
            | {"collective_timeout_s": 60.0}
            | sections.get("run", {}),
        }
        path = tmp_path / f"train-{len(list(tmp_path.glob('train-*.yaml')))}.yaml"
        path.write_text(yaml.safe_dump(doc))
        return path

    return write


@pytest.fixture
def single_rank_env(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A world of one on a free loopback port, for running a rank in the test process."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    for k, v in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "RANK": "0", "WORLD_SIZE": "1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.setenv("LOCAL_RANK", "0")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "1")
    yield
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    os.environ.pop("TORCHELASTIC_RESTART_COUNT", None)


# -- a car's own log (tests/support/real_bags.py): one 300 s highway bag on config/real-log/topics.yaml --------
REAL_DRIVE = RealDrive(duration_s=300.0, seed=1)


@pytest.fixture(scope="session")
def real_bag(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One bag as the car of config/real-log/ records it: no camera, no route, IMU z-down at 100 Hz with a spike,
    odometry at 20 Hz with a 0.8° heading bias, the steering-wheel angle on /vehicle/status."""
    registry = load_registry(REAL_LOG_CONFIG / "topics.yaml")
    return write_real_bag(tmp_path_factory.mktemp("real") / "highway", REAL_DRIVE, registry)
