"""`roadloop train` end to end with real torchrun processes: pre-flight errors, NaN stop, SIGKILL resume.

Kept few and tiny (2 CPU cores shared): one 1-rank run, one 2-rank reference run through the CLI, one
2-rank run with a rank SIGKILLed mid-epoch.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from roadloop_cluster.train.data import BatchStream, SplitData, read_dataset_info
from roadloop_cluster.train.errors import DatasetMismatchError, NonFiniteLossError, TrainError
from roadloop_cluster.train.launch import launch, torchrun_args


def test_mismatch_is_refused_before_any_process_starts(
    state_dataset: Path, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    with pytest.raises(DatasetMismatchError, match="state-only dataset"):
        launch(write_config(), state_dataset, out, nproc=2)
    assert not out.exists()


def test_multi_machine_form_uses_c10d_rendezvous() -> None:
    args = torchrun_args(4, 3, "2:4", "head:29400", "job7")
    assert args[:8] == [
        "--nnodes",
        "2:4",
        "--rdzv-backend",
        "c10d",
        "--rdzv-endpoint",
        "head:29400",
        "--rdzv-id",
        "job7",
    ]
    assert torchrun_args(2, 1, None, None, "x")[:3] == ["--standalone", "--nnodes", "1"]


def test_nan_loss_stops_naming_step_and_shard(
    camera_dataset: Path, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    data = tmp_path / "ds"
    shutil.copytree(camera_dataset, data)
    shard = data / "shards" / "train-00001.npz"
    with np.load(shard) as z:
        arrays = {k: z[k].copy() for k in z.files}
    arrays["waypoints"][5, 2, 0] = np.nan
    np.savez(shard, **arrays)
    # the step at which the poisoned sample (global index 64 + 5) is trained on, epoch 0, one rank
    stream = BatchStream(SplitData(read_dataset_info(data), "train", False), 32, 0, 1, seed=0)
    step = next(i for i, b in enumerate(stream.epoch_batches()) if 69 in b) + 1
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError) as err:
        launch(write_config(run={"epochs": 1, "checkpoint_every": 1}), data, out, nproc=1, max_restarts=0)
    msg = str(err.value)
    assert f"non-finite loss at step {step} " in msg and "shards/train-00001.npz rows 5" in msg
    if step > 1:
        assert f"last good checkpoint kept: {out / 'checkpoints' / f'step-{step - 1:08d}'}" in msg
    assert not (out / "metrics.json").exists() and not (out / "model.pt").exists()


@pytest.mark.slow
def test_sigkill_mid_epoch_resumes_to_bitwise_identical_weights(
    camera_dataset: Path, write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = write_config(run={"epochs": 2, "checkpoint_every": 2})
    ref = tmp_path / "reference"
    cli = [sys.executable, "-m", "roadloop_core.cli.main", "train", "--config", str(config)]
    cli += ["--data", str(camera_dataset), "--out", str(ref), "--nproc", "2", "--max-restarts", "0"]
    done = subprocess.run(cli, capture_output=True, text=True, timeout=300, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-3000:]
    assert "l2_3s" in done.stdout and "constant-velocity" in done.stdout

    # 6 steps per epoch: rank 1 is SIGKILLed after step 5, checkpoints were written at steps 2 and 4
    monkeypatch.setenv("ROADLOOP_FAULT_KILL", "1:5")
    killed = tmp_path / "killed"
    metrics = launch(config, camera_dataset, killed, nproc=2, max_restarts=2)
    assert metrics["resumed_from"] == "step-00000004"
    assert metrics["world_size"] == 2 and metrics["steps"] == 12

    a = torch.load(ref / "model.pt", weights_only=True)
    b = torch.load(killed / "model.pt", weights_only=True)
    assert a.keys() == b.keys()
    different = [k for k in a if not torch.equal(a[k], b[k])]
    assert not different, f"weights differ after resume: {different}"
    ref_metrics = json.loads((ref / "metrics.json").read_text())
    assert ref_metrics["val"] == metrics["val"] and ref_metrics["resumed_from"] is None
    assert (killed / "tb").is_dir() and any((killed / "tb").iterdir())
    assert (killed / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert len([p for p in (killed / "checkpoints").iterdir() if p.is_dir()]) <= 3


@pytest.mark.slow
def test_dead_rank_without_restarts_then_resume_on_fewer_ranks(
    camera_dataset: Path, write_config: Callable[..., Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No restarts left: one clear error naming the rank; the same command on 1 rank resumes (elastic)."""
    config = write_config(run={"epochs": 1, "checkpoint_every": 2})
    out = tmp_path / "run"
    monkeypatch.setenv("ROADLOOP_FAULT_KILL", "0:3")
    with pytest.raises(TrainError, match=r"training failed after 0 restart\(s\): rank 0: .*SIGKILL") as err:
        launch(config, camera_dataset, out, nproc=2, max_restarts=0)
    assert "resume with the same command" in str(err.value) and "\n" not in str(err.value)
    monkeypatch.delenv("ROADLOOP_FAULT_KILL")
    metrics = launch(config, camera_dataset, out, nproc=1)
    assert metrics["resumed_from"] == "step-00000002" and metrics["world_size"] == 1
    assert metrics["steps"] == 6 and metrics["samples_this_attempt"] == 4 * 32  # continued at the next sample
