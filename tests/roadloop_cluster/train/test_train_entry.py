"""The rank entry run in this process as a world of one (gloo): comm hooks, state-only variant, outputs."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from roadloop_cluster.train.train import main


@pytest.mark.parametrize(
    ("variant", "hook"),
    [("camera", "fp16"), ("camera", "powersgd"), ("state", "none")],
)
def test_rank_entry_trains_with_each_comm_hook_and_variant(
    variant: str,
    hook: str,
    camera_dataset: Path,
    state_dataset: Path,
    write_config: Callable[..., Path],
    single_rank_env: None,
    tmp_path: Path,
) -> None:
    data = camera_dataset if variant == "camera" else state_dataset
    cfg = write_config(model={"variant": variant}, run={"epochs": 1, "comm_hook": hook, "checkpoint_every": 100})
    out = tmp_path / "run"
    main(["--config", str(cfg), "--data", str(data), "--out", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 192 // 32 and metrics["world_size"] == 1 and metrics["device"] == "cpu"
    assert set(metrics["val"]) >= {"ade", "fde", "l2_1s", "l2_2s", "l2_3s"}
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["run"]["comm_hook"] == hook and run["dataset"]["dataset_id"]
    weights = torch.load(out / "model.pt", weights_only=True)
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert (out / "checkpoints" / "latest").read_text() == "step-00000006"
