"""RUN -> policy.onnx (opset 17, batch 1, contract tensor names) with a parity check against torch."""

from __future__ import annotations

import json
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray
from torch import nn

from roadloop_cluster.models import DrivingPolicy, ModelConfig, build_policy
from roadloop_cluster.train.data import DatasetInfo, SplitData, read_dataset_info
from roadloop_cluster.train.errors import ExportError
from roadloop_core.config import dataclass_from_dict

__all__ = ["OPSET", "LoadedRun", "check_parity", "export_onnx", "load_run", "parity_samples"]

OPSET = 17


@dataclass
class LoadedRun:
    root: Path
    model: DrivingPolicy
    meta: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def cfg(self) -> ModelConfig:
        return self.model.cfg


def load_run(run_dir: Path) -> LoadedRun:
    """The final weights and what training recorded about them (run.json, metrics.json)."""
    paths = {n: run_dir / n for n in ("model.pt", "run.json", "metrics.json")}
    for name, p in paths.items():
        if not p.is_file():
            raise ExportError(f"{p}: missing ({name} is written when `roadloop train` finishes)")
    try:
        meta = json.loads(paths["run.json"].read_text())
        metrics = json.loads(paths["metrics.json"].read_text())
        cfg = dataclass_from_dict(ModelConfig, meta["config"]["model"], f"{paths['run.json']}: config.model")
        model = build_policy(cfg, float(meta["step_scale"]))
        model.load_state_dict(torch.load(paths["model.pt"], map_location="cpu", weights_only=True))
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        raise ExportError(f"{run_dir}: cannot load the run: {err}") from err
    return LoadedRun(run_dir, model.eval(), meta, metrics)


class _OnnxPolicy(nn.Module):
    """Fixes the input order and names of the contract: (image,) ego_state, route_target."""

    def __init__(self, policy: DrivingPolicy) -> None:
        super().__init__()
        self.policy = policy

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        if self.policy.cfg.uses_image:
            image, ego, route = inputs
            return self.policy.forward(ego, route, image)
        ego, route = inputs
        return self.policy.forward(ego, route, None)


def input_names(cfg: ModelConfig) -> list[str]:
    return ["image", "ego_state", "route_target"] if cfg.uses_image else ["ego_state", "route_target"]


def export_onnx(model: DrivingPolicy, path: Path) -> None:
    """TorchScript-based exporter (the dynamo one needs onnxscript, absent here); batch fixed at 1."""
    cfg = model.cfg
    h, w = cfg.image_size
    example: list[torch.Tensor] = [torch.zeros(1, 3, h, w)] if cfg.uses_image else []
    example += [torch.zeros(1, 4), torch.zeros(1, 2)]
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _OnnxPolicy(model).eval(),
                tuple(example),
                str(path),
                input_names=input_names(cfg),
                output_names=["waypoints", "target_speed"],
                opset_version=OPSET,
                dynamo=False,
                do_constant_folding=True,
            )
        import onnx

        onnx.checker.check_model(str(path), full_check=True)
    except Exception as err:
        raise ExportError(f"{path}: ONNX export failed: {err}") from err


def parity_samples(run: LoadedRun, data: Path | None, count: int) -> list[dict[str, NDArray[np.float32]]]:
    """Up to `count` validation samples, as the vehicle feeds them (batch 1, normalised, image /255)."""
    root = data or Path(run.meta["dataset"]["root"])
    try:
        info: DatasetInfo = read_dataset_info(root)
    except Exception as err:
        raise ExportError(f"parity check needs the validation split: {err} (pass --data DATASET)") from err
    val = SplitData(info, "val", run.cfg.uses_image)
    idx = np.linspace(0, len(val) - 1, num=min(count, len(val))).round().astype(np.int64)
    out = []
    for i in idx:
        b = val.batch(np.asarray([i], np.int64))
        sample = {"ego_state": b.ego_state.numpy(), "route_target": b.route_target.numpy()}
        if b.image is not None:
            sample["image"] = b.image.numpy()
        out.append(sample)
    return out


def check_parity(
    model: DrivingPolicy, onnx_path: Path, samples: list[dict[str, NDArray[np.float32]]], tol: float = 1e-4
) -> float:
    """Max |onnxruntime - torch| over both outputs and all samples; ExportError if above `tol`."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as err:
        raise ExportError(f"{onnx_path}: onnxruntime cannot load it: {err}") from err
    worst = 0.0
    for i, s in enumerate(samples):
        with torch.no_grad():
            t = {k: torch.from_numpy(v) for k, v in s.items()}
            wp, speed = model(t["ego_state"], t["route_target"], t.get("image"))
        o_wp, o_speed = sess.run(["waypoints", "target_speed"], {k: v for k, v in s.items()})
        diff = max(float(np.abs(o_wp - wp.numpy()).max()), float(np.abs(o_speed - speed.numpy()).max()))
        if not np.isfinite(diff) or diff > tol:
            raise ExportError(
                f"{onnx_path}: parity check failed on validation sample {i}: max |onnx - torch| = {diff:.3g} > {tol:g}"
            )
        worst = max(worst, diff)
    return worst
