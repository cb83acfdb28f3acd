"""RUN -> policy.onnx (opset 17, batch 1, the tensor table's names) with a parity check against torch."""

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

from roadloop_cluster.models import DrivingPolicy, ModelArgs, ModelConfig, build_policy
from roadloop_cluster.train.config import FROM_DATASET
from roadloop_cluster.train.data import DatasetInfo, ShardSplit, read_dataset_info
from roadloop_cluster.train.errors import ExportError
from roadloop_core.config import dataclass_from_dict
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.contract.tensors import OUTPUTS, ModelTensor, model_inputs
from roadloop_core.errors import ConfigError

__all__ = ["OPSET", "LoadedRun", "check_parity", "export_onnx", "load_run", "parity_samples"]

OPSET = 17


@dataclass
class LoadedRun:
    root: Path
    model: DrivingPolicy
    observation: ObservationSpec  # of the data it was trained on: its tensors' sizes
    meta: dict[str, Any]
    metrics: dict[str, Any]

    @property
    def inputs(self) -> tuple[ModelTensor, ...]:
        return model_inputs(self.observation)


def load_run(run_dir: Path) -> LoadedRun:
    """The final weights and what training recorded about them (run.json, metrics.json)."""
    paths = {n: run_dir / n for n in ("model.pt", "run.json", "metrics.json")}
    for name, p in paths.items():
        if not p.is_file():
            raise ExportError(f"{p}: missing ({name} is written when `roadloop train` finishes)")
    where = paths["run.json"]
    try:
        meta = json.loads(where.read_text())
        metrics = json.loads(paths["metrics.json"].read_text())
        # runs trained before the dataset decided them still carry these keys; their observation says them now
        section = {k: v for k, v in meta["config"]["model"].items() if k not in FROM_DATASET}
        cfg = dataclass_from_dict(ModelConfig, section, f"{where}: config.model")
        observation = ObservationSpec.from_dict(meta["observation"], f"{where}: observation", complete=True)
        # the prior's de-normalisation (ego_mean, ego_std) is in the state dict, like the step scale
        model = build_policy(ModelArgs.from_observation(cfg, observation), float(meta["step_scale"]))
        model.load_state_dict(torch.load(paths["model.pt"], map_location="cpu", weights_only=True))
    except (OSError, ValueError, KeyError, RuntimeError, ConfigError) as err:
        raise ExportError(f"{run_dir}: cannot load the run: {err}") from err
    return LoadedRun(run_dir, model.eval(), observation, meta, metrics)


class _OnnxPolicy(nn.Module):
    """The policy with positional inputs in the graph's order (the tracer names them from the table)."""

    def __init__(self, policy: DrivingPolicy, names: list[str]) -> None:
        super().__init__()
        self.policy = policy
        self.names = names

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        return self.policy.forward(dict(zip(self.names, inputs, strict=True)))


def export_onnx(model: DrivingPolicy, path: Path) -> None:
    """TorchScript-based exporter (the dynamo one needs onnxscript, absent here); batch fixed at 1."""
    names = list(model.args.inputs)  # the tensor table's inputs for the model's data, in graph order
    example = tuple(torch.zeros(1, *shape) for shape in model.args.inputs.values())
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            torch.onnx.export(
                _OnnxPolicy(model, names).eval(),
                example,
                str(path),
                input_names=names,
                output_names=[t.name for t in OUTPUTS],
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
    val = ShardSplit(info, "val", run.inputs)  # reads only the samples asked for
    idx = np.linspace(0, len(val) - 1, num=min(count, len(val))).round().astype(np.int64)
    return [{k: v.numpy() for k, v in val.batch(np.asarray([i], np.int64)).inputs.items()} for i in idx]


def check_parity(
    model: DrivingPolicy, onnx_path: Path, samples: list[dict[str, NDArray[np.float32]]], tol: float = 1e-4
) -> float:
    """Max |onnxruntime - torch| over both outputs and all samples; ExportError where an output differs by more
    than `tol` x max(1, |torch's value|): absolute up to 1, relative beyond (float32 kernels that sum in another
    order differ by a few ulp, and a waypoint 400 m ahead has an ulp of 3e-5 m)."""
    import onnxruntime as ort

    try:
        sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    except Exception as err:
        raise ExportError(f"{onnx_path}: onnxruntime cannot load it: {err}") from err
    worst = 0.0
    for i, s in enumerate(samples):
        with torch.no_grad():
            expected = model({k: torch.from_numpy(v) for k, v in s.items()})
        got = sess.run([t.name for t in OUTPUTS], dict(s))
        pairs = [(o, e.numpy()) for o, e in zip(got, expected, strict=True)]
        diff = max(float(np.abs(o - e).max()) for o, e in pairs)
        scaled = max(float((np.abs(o - e) / np.maximum(1.0, np.abs(e))).max()) for o, e in pairs)
        if not np.isfinite(diff) or not scaled <= tol:
            raise ExportError(
                f"{onnx_path}: parity check failed on validation sample {i}: max |onnx - torch| = {diff:.3g}, "
                f"{scaled:.3g} of max(1, |torch|) > {tol:g}"
            )
        worst = max(worst, diff)
    return worst
