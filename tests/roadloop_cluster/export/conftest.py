"""Fixtures for the export tests: runs trained in the test process, and a key pair."""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
import yaml


@pytest.fixture(scope="module")
def trained_runs(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: dict[str, object], camera_dataset: Path, state_dataset: Path
) -> dict[str, tuple[Path, Path]]:
    """{"camera" | "state": (run folder, dataset)} trained for one short epoch in this process (world of one)."""
    from roadloop_cluster.train.train import main

    out: dict[str, tuple[Path, Path]] = {}
    mp = pytest.MonkeyPatch()
    try:
        for variant, data in (("camera", camera_dataset), ("state", state_dataset)):
            base = tmp_path_factory.mktemp(f"export-{variant}")
            cfg = base / "train.yaml"
            run = {"epochs": 1, "batch_size": 32, "checkpoint_every": 100, "log_every": 1, "baseline_steps": 5}
            cfg.write_text(yaml.safe_dump({"model": tiny_model, "run": run}))
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
