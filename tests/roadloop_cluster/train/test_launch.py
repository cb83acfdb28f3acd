"""`roadloop train` end to end with real torchrun processes: pre-flight errors, NaN stop, SIGKILL resume.

Kept few and tiny (2 CPU cores shared): one 1-rank run, one 2-rank reference run through the CLI, one
2-rank run with a rank SIGKILLed from outside once training has checkpointed, one that dies for good.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import psutil
import pytest
import torch

from roadloop_cluster.train.checkpoint import latest_checkpoint
from roadloop_cluster.train.data import BatchStream, ShardSplit, read_dataset_info
from roadloop_cluster.train.errors import DatasetMismatchError, NonFiniteLossError, TrainError
from roadloop_cluster.train.launch import launch, torchrun_args
from roadloop_core.contract.tensors import EGO_STATE
from roadloop_core.errors import ConfigError

# generous: a loaded 2-core machine is slow, the kill normally lands within seconds. It only bounds how long a
# RankKiller looks for its rank; the tests themselves wait for the training to end, with no timeout of their own.
DEADLINE_S = 1800.0


class RankKiller(threading.Thread):
    """SIGKILLs rank `rank` of the training under `run` once it has written its first checkpoint.

    The ranks are the torchrun agent's children (here: of this process, which runs `launch`),
    told apart by the RANK torchrun sets in their environment.
    """

    def __init__(self, run: Path, rank: int, deadline_s: float = DEADLINE_S) -> None:
        super().__init__(daemon=True)
        self.run_dir, self.rank, self.deadline_s = run, rank, deadline_s
        self.killed: int | None = None  # the pid it killed
        self.seen: str | None = None  # the checkpoint `latest` named when it struck
        self.done = threading.Event()  # set when the training is over: stop looking

    def _rank_pid(self) -> int | None:
        for child in psutil.Process().children(recursive=True):
            try:
                if "roadloop_cluster.train.train" in child.cmdline() and child.environ().get("RANK") == str(self.rank):
                    return int(child.pid)
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
        return None

    def run(self) -> None:
        marker = self.run_dir / "checkpoints" / "latest"
        deadline = time.monotonic() + self.deadline_s
        while time.monotonic() < deadline and not self.done.is_set():
            if marker.is_file():
                pid = self._rank_pid()
                if pid is not None:
                    self.seen = marker.read_text().strip()
                    os.kill(pid, signal.SIGKILL)
                    self.killed = pid
                    return
            time.sleep(0.01)


def _step(checkpoint: str | None) -> int:
    return int(checkpoint.removeprefix("step-")) if checkpoint else 0


def test_stale_model_keys_are_refused_before_any_process_starts(
    camera_dataset: Path, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    with pytest.raises(ConfigError, match=r"model.image_size is not set in the training config any more") as err:
        launch(write_config(model={"image_size": [64, 64]}), camera_dataset, out, nproc=2)
    assert "\n" not in str(err.value)
    assert not out.exists()


def test_a_batch_size_override_the_ranks_cannot_split_is_refused_naming_the_flag(
    camera_dataset: Path, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    out = tmp_path / "run"
    with pytest.raises(TrainError, match=r"^--batch-size 33 is not divisible by --nproc 2$"):
        launch(write_config(), camera_dataset, out, nproc=2, batch_size=33)
    assert not out.exists()


def test_shards_that_disagree_with_the_index_are_refused(
    camera_dataset: Path, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    data = tmp_path / "ds"
    shutil.copytree(camera_dataset, data)
    index = json.loads((data / "index.json").read_text())
    index["observation"]["image_width"] = 64  # the shards hold 48 px wide images
    (data / "index.json").write_text(json.dumps(index))
    out = tmp_path / "run"
    with pytest.raises(DatasetMismatchError, match=r"array 'image' has shape \(64, 32, 48, 3\)"):
        launch(write_config(), data, out, nproc=2)
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
    # the first sample of the second shard (64 rows each) that epoch 0 trains on, one rank, and its step
    stream = BatchStream(ShardSplit(read_dataset_info(data), "train", (EGO_STATE,)), 32, 0, 1, seed=0)
    batches = stream.epoch_batches()
    poisoned = next(int(i) for b in batches for i in b if 64 <= i < 128)
    step = next(n for n, b in enumerate(batches) if poisoned in b) + 1
    shard = data / "shards" / "train-00001.npz"
    with np.load(shard) as z:
        arrays = {k: z[k].copy() for k in z.files}
    arrays["waypoints"][poisoned - 64, 2, 0] = np.nan
    np.savez(shard, **arrays)
    out = tmp_path / "run"
    with pytest.raises(NonFiniteLossError) as err:
        launch(write_config(run={"epochs": 1, "checkpoint_every": 1}), data, out, nproc=1, max_restarts=0)
    msg = str(err.value)
    assert f"non-finite loss at step {step} " in msg and f"shards/train-00001.npz rows {poisoned - 64}" in msg
    if step > 1:
        assert f"last good checkpoint kept: {out / 'checkpoints' / f'step-{step - 1:08d}'}" in msg
    assert not (out / "metrics.json").exists() and not (out / "model.pt").exists()


@pytest.mark.slow
@pytest.mark.timeout(3600)
def test_sigkill_mid_epoch_resumes_to_bitwise_identical_weights(
    camera_dataset: Path, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(run={"epochs": 2, "checkpoint_every": 2})
    ref = tmp_path / "reference"
    cli = [sys.executable, "-m", "roadloop_core.cli.main", "train", "--config", str(config)]
    cli += ["--data", str(camera_dataset), "--out", str(ref), "--nproc", "2", "--max-restarts", "0"]
    t0 = time.monotonic()
    # no timeout: a killed `roadloop train` would leave its ranks to the kernel's PR_SET_PDEATHSIG, but a slow
    # machine is no failure; pytest's own per-test limit is the backstop
    done = subprocess.run(cli, capture_output=True, text=True, env=os.environ.copy())
    assert done.returncode == 0, done.stderr[-3000:]
    reference_s = time.monotonic() - t0
    assert "l2_3s" in done.stdout and "constant-velocity" in done.stdout
    total = json.loads((ref / "metrics.json").read_text())["steps"]

    # rank 1 is SIGKILLed from outside once a checkpoint exists; torchrun restarts the group from `latest`
    killed = tmp_path / "killed"
    killer = RankKiller(killed, rank=1, deadline_s=10 * reference_s + 120)
    killer.start()
    try:
        metrics = launch(config, camera_dataset, killed, nproc=2, max_restarts=2)
    finally:
        killer.done.set()
        killer.join()
    assert killer.killed is not None, "no checkpoint and rank 1 seen while training ran"
    assert metrics["resumed_from"] is not None and _step(metrics["resumed_from"]) >= _step(killer.seen) >= 2
    assert metrics["world_size"] == 2 and metrics["steps"] == total

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
@pytest.mark.timeout(3600)
def test_dead_rank_without_restarts_then_resume_on_fewer_ranks(
    camera_dataset: Path, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """No restarts left: one clear error naming the rank; the same command on 1 rank resumes (elastic)."""
    config = write_config(run={"epochs": 2, "checkpoint_every": 2})
    out = tmp_path / "run"
    killer = RankKiller(out, rank=0)
    killer.start()
    try:
        with pytest.raises(TrainError, match=r"training failed after 0 restart\(s\): rank 0: .*SIGKILL") as err:
            launch(config, camera_dataset, out, nproc=2, max_restarts=0)
    finally:
        killer.done.set()
        killer.join()
    assert killer.killed is not None
    assert "resume with the same command" in str(err.value) and "\n" not in str(err.value)
    last = latest_checkpoint(out)
    assert last is not None
    metrics = launch(config, camera_dataset, out, nproc=1)
    assert metrics["resumed_from"] == last.name and metrics["world_size"] == 1
    total = 2 * (read_dataset_info(camera_dataset).index.splits["train"].count // 32)
    assert metrics["steps"] == total
    assert metrics["samples_this_attempt"] == (total - _step(last.name)) * 32  # continued at the next sample
