"""The rank entry run in this process as a world of one (gloo): comm hooks, camera and state-only data, outputs."""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from roadloop_cluster.train.train import main
from roadloop_core.contract.dataset_index import read_dataset_index


@pytest.mark.parametrize(
    ("data_kind", "hook"),
    [("camera", "fp16"), ("camera", "powersgd"), ("state", "none")],
)
def test_rank_entry_trains_with_each_comm_hook_on_camera_and_state_only_data(
    data_kind: str,
    hook: str,
    camera_dataset: Path,
    state_dataset: Path,
    write_config: Callable[..., Path],
    single_rank_env: None,
    tmp_path: Path,
) -> None:
    data = camera_dataset if data_kind == "camera" else state_dataset
    cfg = write_config(run={"epochs": 1, "comm_hook": hook, "checkpoint_every": 100})
    out = tmp_path / "run"
    main(["--config", str(cfg), "--data", str(data), "--out", str(out)])
    metrics = json.loads((out / "metrics.json").read_text())
    steps = read_dataset_index(data).splits["train"].count // 32
    assert metrics["steps"] == steps and metrics["world_size"] == 1 and metrics["device"] == "cpu"
    assert set(metrics["val"]) >= {"ade", "fde", "l2_1s", "l2_2s", "l2_3s"}  # horizon 6 x 0.5 s reaches 3 s
    run = json.loads((out / "run.json").read_text())
    assert run["config"]["run"]["comm_hook"] == hook and run["dataset"]["dataset_id"]
    assert run["observation"] == read_dataset_index(data).observation.to_dict()
    assert set(run["config"]["model"]) == {"encoder", "channels", "state_hidden", "hidden", "prior"}
    weights = torch.load(out / "model.pt", weights_only=True)
    assert all(torch.isfinite(w).all() for w in weights.values())
    assert ("encoder.body.0.weight" in weights) == (data_kind == "camera")
    assert (out / "checkpoints" / "latest").read_text() == f"step-{steps:08d}"


def test_epochs_and_batch_size_flags_override_the_config_and_are_what_run_json_records(
    camera_dataset: Path, write_config: Callable[..., Path], single_rank_env: None, tmp_path: Path
) -> None:
    """What `roadloop loop` passes instead of writing a copy of train.yaml: the file stays the one source."""
    cfg = write_config(run={"epochs": 1, "batch_size": 32, "checkpoint_every": 100})
    out = tmp_path / "run"
    main(
        ["--config", str(cfg), "--data", str(camera_dataset), "--out", str(out), "--epochs", "2", "--batch-size", "16"]
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["steps"] == 2 * (read_dataset_index(camera_dataset).splits["train"].count // 16)
    run = json.loads((out / "run.json").read_text())["config"]["run"]
    assert (run["epochs"], run["batch_size"], run["checkpoint_every"]) == (2, 16, 100)


def test_run_sizes_override_only_what_is_given() -> None:
    from roadloop_cluster.train.config import TrainConfig, with_run_sizes

    cfg = TrainConfig()
    assert with_run_sizes(cfg) == cfg
    assert with_run_sizes(cfg, epochs=3).run == dataclasses.replace(cfg.run, epochs=3)
    assert with_run_sizes(cfg, batch_size=8).run == dataclasses.replace(cfg.run, batch_size=8)
    with pytest.raises(ValueError, match="epochs, batch_size"):
        with_run_sizes(cfg, epochs=0)
