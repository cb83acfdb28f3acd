"""Fixtures for the export tests: runs trained in the test process, and a key pair."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml

from roadloop_cluster.train.synthetic import write_synthetic_dataset


@pytest.fixture(scope="module")
def trained_runs(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: dict[str, object]
) -> dict[str, tuple[Path, Path]]:
    """{variant: (run folder, dataset)} trained for one short epoch in this process (world of one)."""
    from roadloop_cluster.train.train import main

    out: dict[str, tuple[Path, Path]] = {}
    mp = pytest.MonkeyPatch()
    try:
        for variant, image in (("camera", (32, 32)), ("state", None)):
            base = tmp_path_factory.mktemp(f"export-{variant}")
            data = write_synthetic_dataset(base / "ds", n_train=96, n_val=24, image_size=image, shard_size=48)
            cfg = base / "train.yaml"
            model = {**tiny_model, "variant": variant}
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
