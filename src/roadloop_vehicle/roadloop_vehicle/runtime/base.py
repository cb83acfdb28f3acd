"""The backend interface and the shared preprocessing into preallocated input buffers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Protocol

import numpy as np
import numpy.typing as npt

from roadloop_core.contract.tensors import TARGET_SPEED, WAYPOINTS
from roadloop_vehicle.errors import ModelError
from roadloop_vehicle.runtime.spec import InputSpec, ModelInputs, ModelOutputs, PolicySpec

__all__ = ["Backend", "IOBuffers", "RuntimeConfig"]


@dataclass(frozen=True)
class RuntimeConfig:
    backend: str = "onnxruntime"  # onnxruntime | tensorrt
    device: str = "cpu"  # cpu | cuda (required) | auto (onnxruntime's CUDA provider where present, else CPU)
    intra_op_threads: int = 1  # 1 keeps replay reproducible and leaves cores to the other nodes
    warmup_runs: int = 3
    precision: str = "fp16"  # tensorrt only: fp16 | fp32
    engine_cache_dir: str = "~/.cache/roadloop/engines"

    def __post_init__(self) -> None:
        if self.backend not in ("onnxruntime", "tensorrt"):
            raise ValueError(f"backend must be onnxruntime or tensorrt, got {self.backend!r}")
        if self.device not in ("cpu", "cuda", "auto"):
            raise ValueError(f"device must be cpu, cuda or auto, got {self.device!r}")
        if self.precision not in ("fp16", "fp32"):
            raise ValueError(f"precision must be fp16 or fp32, got {self.precision!r}")
        if self.intra_op_threads < 0 or self.warmup_runs < 0:
            raise ValueError("intra_op_threads and warmup_runs must be >= 0")


class _Input:
    """How one input buffer is filled from a feature array (precomputed once per model)."""

    def __init__(self, spec: InputSpec, buffer: npt.NDArray[np.float32]) -> None:
        t = spec.tensor
        self.name, self.feature, self.channels_first, self.kind = (
            t.name,
            t.array.name,
            t.channels_first,
            t.normalization,
        )
        self.dst = buffer[0]
        self.mean = spec.mean if spec.mean is not None else np.zeros(self.dst.shape, np.float32)
        self.inv_std = 1.0 / spec.std if spec.std is not None else np.ones(self.dst.shape, np.float32)
        self.scale = np.float32(spec.scale if spec.scale is not None else 1.0)

    def fill(self, x: ModelInputs) -> None:
        value = x.get(self.feature)
        if value is None:
            raise ModelError(
                f"model input '{self.name}' needs feature '{self.feature}', which the observation does not provide"
            )
        src = value.transpose(2, 0, 1) if self.channels_first else value
        if src.shape != self.dst.shape:
            raise ModelError(
                f"feature '{self.feature}' is {value.shape}, model input '{self.name}' wants {self.dst.shape}"
            )
        if self.kind == "scale":
            np.multiply(src, self.scale, out=self.dst, casting="unsafe")
        elif self.kind == "stats":
            np.subtract(src, self.mean, out=self.dst)
            np.multiply(self.dst, self.inv_std, out=self.dst)
        else:
            np.copyto(self.dst, src, casting="unsafe")


class IOBuffers:
    """Input and output arrays allocated once per model and reused every frame."""

    def __init__(self, spec: PolicySpec) -> None:
        self.spec = spec
        self.inputs: dict[str, npt.NDArray[np.float32]] = {
            name: np.zeros(s.shape, np.float32) for name, s in spec.inputs.items()
        }
        self.outputs: dict[str, npt.NDArray[np.float32]] = {
            name: np.zeros(shape, np.float32) for name, shape in spec.output_shapes.items()
        }
        self._fill = [_Input(s, self.inputs[name]) for name, s in spec.inputs.items()]

    def fill(self, x: ModelInputs) -> None:
        """Normalise features into the input buffers in place (no allocation per frame)."""
        for tensor in self._fill:
            tensor.fill(x)

    def result(self, inference_ms: float) -> ModelOutputs:
        return ModelOutputs(
            waypoints=self.outputs[WAYPOINTS.name][0].copy(),
            target_speed=float(self.outputs[TARGET_SPEED.name][0, 0]),
            inference_ms=inference_ms,
        )


class Backend(Protocol):
    """An inference engine bound to one model's IOBuffers."""

    name: str
    buffers: IOBuffers

    def run(self) -> None:
        """Run the model on `buffers.inputs`, leaving results in `buffers.outputs`."""
        ...


def timed_run(backend: Backend, x: ModelInputs) -> ModelOutputs:
    backend.buffers.fill(x)
    t0 = time.perf_counter()
    backend.run()
    return backend.buffers.result((time.perf_counter() - t0) * 1e3)
