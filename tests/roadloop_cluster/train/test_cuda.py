"""The GPU paths: NCCL (with gloo beside it for asynchronous checkpoints), bf16/fp16 AMP, the rank entry on
cuda:0, and the exported policy on onnxruntime's CUDA provider. Skipped without a CUDA GPU."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from roadloop_cluster.train.config import RunConfig, TrainConfig
from roadloop_cluster.train.data import ShardSplit, read_dataset_info
from roadloop_cluster.train.parallelize import all_reduce_sum, grad_scaler, init_distributed, shutdown

pytestmark = [pytest.mark.cuda, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_nccl_init_and_collectives(single_rank_env: None) -> None:
    d = init_distributed(RunConfig(collective_timeout_s=120.0))
    try:
        assert d.device.type == "cuda" and "nccl" in d.backend
        assert float(all_reduce_sum(torch.tensor([2.0]), d)[0]) == 2.0
        x = torch.ones(4, device=d.device)
        torch.distributed.all_reduce(x)  # on the NCCL side of the group
        assert float(x.sum()) == 4.0
    finally:
        shutdown()


@pytest.mark.parametrize("amp", ["bf16", "fp16"])
def test_amp_forward_backward(amp: str, camera_dataset: Path, single_rank_env: None) -> None:
    from roadloop_cluster.models import ModelArgs
    from roadloop_cluster.train import steps
    from roadloop_core.contract.tensors import model_inputs

    info = read_dataset_info(camera_dataset)
    cfg = TrainConfig(run=RunConfig(amp=amp))
    d = init_distributed(cfg.run)
    try:
        split = ShardSplit(info, "train", model_inputs(info.observation))
        model = steps.build_model(ModelArgs.from_dataset(cfg.model, info.index), split, info).to(d.device)
        scaler = grad_scaler(d, amp)
        assert scaler.is_enabled() == (amp == "fp16")
        b = split.batch(np.arange(16, dtype=np.int64)).to(d.device)
        per_sample, wp = steps.forward_loss(model, b, d, cfg)
        assert wp.dtype == (torch.bfloat16 if amp == "bf16" else torch.float16)  # autocast really ran
        optim = torch.optim.SGD(model.parameters(), lr=0.0)
        scaler.scale(per_sample.mean()).backward()  # type: ignore[no-untyped-call]
        scaler.unscale_(optim)
        finite = all(p.grad is not None and torch.isfinite(p.grad).all() for p in model.parameters())
        scale = scaler.get_scale() if scaler.is_enabled() else 1.0
        scaler.step(optim)
        scaler.update()
        # bf16 needs no loss scaling; an fp16 overflow at the first scale (65536) is skipped and the scale backs off
        assert finite if amp == "bf16" else (finite or scaler.get_scale() < scale)
    finally:
        shutdown()


def test_fp16_training_goes_through_loss_scale_overflows(
    camera_dataset: Path, write_config: Callable[..., Path], single_rank_env: None, tmp_path: Path
) -> None:
    """The first fp16 steps overflow at the scaler's initial scale: those steps are skipped, training goes on."""
    from roadloop_cluster.train.train import main

    out = tmp_path / "run"
    main(["--config", str(write_config(run={"epochs": 2, "amp": "fp16"})), "--data", str(camera_dataset),
          "--out", str(out)])  # fmt: skip
    assert not list(out.glob("failure-rank*.json")), [p.read_text() for p in out.glob("failure-rank*.json")]
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["device"] == "cuda:0" and len(metrics["history"]) == 2 and np.isfinite(metrics["val"]["ade"])


def test_rank_entry_trains_on_the_gpu_and_exports_for_the_cuda_provider(
    camera_dataset: Path, write_config: Callable[..., Path], single_rank_env: None, tmp_path: Path
) -> None:
    from roadloop_cluster.export import export_onnx, load_run
    from roadloop_cluster.export.onnx_export import parity_samples
    from roadloop_cluster.train.train import main

    out = tmp_path / "run"
    main(
        [
            "--config",
            str(write_config(run={"epochs": 1, "amp": "bf16"})),
            "--data",
            str(camera_dataset),
            "--out",
            str(out),
        ]
    )
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["device"] == "cuda:0" and np.isfinite(metrics["val"]["ade"])

    import onnxruntime as ort

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        pytest.skip(f"onnxruntime here has no CUDAExecutionProvider ({', '.join(ort.get_available_providers())})")
    run = load_run(out)
    export_onnx(run.model, out / "policy.onnx")
    sess = ort.InferenceSession(str(out / "policy.onnx"), providers=["CUDAExecutionProvider"])
    assert sess.get_providers()[0] == "CUDAExecutionProvider"
    for s in parity_samples(run, camera_dataset, 4):
        with torch.no_grad():
            expected = run.model({k: torch.from_numpy(v) for k, v in s.items()})
        got = sess.run(["waypoints", "target_speed"], s)
        for o, e in zip(got, expected, strict=True):
            np.testing.assert_allclose(o, e.numpy(), atol=1e-3)
