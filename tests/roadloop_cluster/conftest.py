"""Fixtures shared by the training and export tests: tiny contract-format datasets, configs, a world of one."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import yaml

from roadloop_cluster.train.synthetic import write_synthetic_dataset

TINY_MODEL = {
    "variant": "camera",
    "encoder": "small",
    "image_size": [32, 32],
    "horizon": 6,
    "dt": 0.5,
    "channels": [8, 16],
    "state_hidden": 16,
    "hidden": 32,
}


@pytest.fixture(scope="session")
def tiny_model() -> dict[str, object]:
    """The smallest model config the trainer accepts (a fresh copy per use)."""
    return dict(TINY_MODEL)


@pytest.fixture(scope="session")
def camera_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_synthetic_dataset(tmp_path_factory.mktemp("ds-camera"), n_train=192, n_val=48, shard_size=64)


@pytest.fixture(scope="session")
def state_dataset(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("ds-state")
    return write_synthetic_dataset(root, n_train=192, n_val=48, image_size=None, shard_size=64)


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
    monkeypatch.delenv("ROADLOOP_FAULT_KILL", raising=False)
    yield
    import torch.distributed as dist

    if dist.is_initialized():
        dist.destroy_process_group()
    os.environ.pop("TORCHELASTIC_RESTART_COUNT", None)
