"""Fixtures for the export tests: a tiny dataset and a run trained in the test process."""

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


@pytest.fixture(scope="module")
def trained_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path]]:
    """{variant: (run folder, dataset)} trained for one short epoch in this process (world of one)."""
    from roadloop_cluster.train.train import main

    out: dict[str, tuple[Path, Path]] = {}
    mp = pytest.MonkeyPatch()
    try:
        for variant, image in (("camera", (32, 32)), ("state", None)):
            base = tmp_path_factory.mktemp(f"export-{variant}")
            data = write_synthetic_dataset(base / "ds", n_train=96, n_val=24, image_size=image, shard_size=48)
            cfg = base / "train.yaml"
            model = {**TINY_MODEL, "variant": variant}
            run = {"epochs": 1, "batch_size": 32, "checkpoint_every": 100, "log_every": 1, "baseline_steps": 5}
            cfg.write_text(yaml.safe_dump({"model": model, "run": run}))
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                mp.setenv("MASTER_PORT", str(s.getsockname()[1]))
            for k, v in {"MASTER_ADDR": "127.0.0.1", "RANK": "0", "WORLD_SIZE": "1", "LOCAL_WORLD_SIZE": "1"}.items():
                mp.setenv(k, v)
            main(["--config", str(cfg), "--data", str(data), "--out", str(base / "run")])
            out[variant] = (base / "run", data)
    finally:
        mp.undo()
    return out


@pytest.fixture(scope="module")
def keypair(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    from roadloop_core.bundle import generate_keypair

    return generate_keypair(tmp_path_factory.mktemp("keys"))
