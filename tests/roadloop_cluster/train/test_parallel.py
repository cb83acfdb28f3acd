"""FSDP2 and LocalSGD with real 2-rank torchrun launches on CPU/gloo: a DCP checkpoint written under one
wrapping resumes under the other, ONNX export works from either, LocalSGD converges like DDP."""

from __future__ import annotations

import dataclasses
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
import torch

from roadloop_cluster.export import check_parity, export_onnx, load_run
from roadloop_cluster.export.onnx_export import parity_samples
from roadloop_cluster.train.config import load_train_config
from roadloop_cluster.train.launch import launch
from roadloop_core.config import config_dir
from roadloop_core.contract.dataset_index import read_dataset_index

# LocalSGD's final validation ADE may differ this much (relative) from DDP's on the same data and steps
# (measured on the default model: 2.5 % lower): between averages each rank follows its own half of the batch.
LOCAL_SGD_TOLERANCE = 0.10


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return dict(torch.load(run / "model.pt", weights_only=True))


def _same(a: dict[str, torch.Tensor], b: dict[str, torch.Tensor]) -> list[str]:
    assert a.keys() == b.keys()
    return [k for k in a if not torch.equal(a[k], b[k])]


@pytest.mark.slow
@pytest.mark.parametrize(("first", "then"), [("fsdp", "ddp"), ("ddp", "fsdp")])
def test_a_checkpoint_resumes_under_the_other_wrapping_and_exports(
    first: str, then: str, camera_dataset: Path, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    run = tmp_path / "run"
    m = launch(write_config(run={"epochs": 1, "parallel": first}), camera_dataset, run, nproc=2)
    trained = _weights(run)
    total = sum(w.numel() for k, w in trained.items() if k != "step_scale")
    held = total if first == "ddp" else (total + 1) // 2  # FSDP2: each rank keeps its shard only
    assert m["parallel"] == first and m["parameters"] == total
    assert held <= m["parameters_on_rank0"] <= held + 64  # (a shard is rounded up per parameter)

    # the same run folder and epoch count under the other wrapping: it loads the last checkpoint and has
    # nothing left to train, so its model.pt is exactly what it loaded
    again = tmp_path / "again"
    shutil.copytree(run, again)
    m = launch(write_config(run={"epochs": 1, "parallel": then}), camera_dataset, again, nproc=2)
    assert m["resumed_from"] is not None and m["samples_this_attempt"] == 0
    assert not _same(trained, _weights(again)), f"{first} -> {then}: loaded weights differ"

    # one more epoch under the other wrapping: the optimizer state came along and training goes on
    m = launch(write_config(run={"epochs": 2, "parallel": then}), camera_dataset, again, nproc=2)
    steps = read_dataset_index(camera_dataset).splits["train"].count // 32
    assert m["steps"] == 2 * steps and m["samples_this_attempt"] == steps * 32
    assert m["val"]["ade"] < m["history"][0]["ade"] * 1.5  # training went on, not off the rails
    assert _same(trained, _weights(again))

    for folder in (run, again):  # the same model.pt format from either wrapping
        loaded = load_run(folder)
        export_onnx(loaded.model, folder / "policy.onnx")
        assert check_parity(loaded.model, folder / "policy.onnx", parity_samples(loaded, camera_dataset, 4)) <= 1e-4


@pytest.mark.slow
def test_local_sgd_converges_within_tolerance_of_ddp(
    camera_dataset: Path, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    """Pure LocalSGD (no gradient all-reduce after 4 DDP steps, parameters averaged every 2 steps) against
    DDP on the default model (config/train.yaml's), same data, seed, steps and global batch."""
    model = dataclasses.asdict(load_train_config(config_dir() / "train.yaml").model)
    run = {"epochs": 4}
    ddp = launch(write_config(model, run=run), camera_dataset, tmp_path / "ddp", nproc=2)
    local = {"local_sgd_period": 2, "local_sgd_start_step": 4, "local_sgd_intra_node": False}
    lsgd = launch(write_config(model, run=run | local), camera_dataset, tmp_path / "lsgd", nproc=2)
    assert lsgd["steps"] == ddp["steps"]
    assert _same(_weights(tmp_path / "ddp"), _weights(tmp_path / "lsgd"))  # it really ran another algorithm
    ade, ref = lsgd["val"]["ade"], ddp["val"]["ade"]
    assert abs(ade - ref) <= LOCAL_SGD_TOLERANCE * ref, f"LocalSGD ADE {ade:.3f} m vs DDP {ref:.3f} m"
    assert lsgd["val"]["ade"] < lsgd["history"][0]["ade"]  # it learns
