"""The backend interface and the shared preprocessing into preallocated input buffers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Protocol

import numpy as np
import numpy.typing as npt

from roadloop_core.contract.tensors import TARGET_SPEED, WAYPOINTS
from roadloop_core.param_schema import Param, check_fields
from roadloop_vehicle.errors import ModelError
from roadloop_vehicle.runtime.spec import InputSpec, ModelInputs, ModelOutputs, PolicySpec

__all__ = ["Backend", "IOBuffers", "RuntimeConfig"]


@dataclass(frozen=True)
class RuntimeConfig:
    backend: Annotated[str, Param("inference engine (tensorrt where installed)", choices=("onnxruntime", "tensorrt"))]
    device: Annotated[
        str,
        Param(
            "cpu; cuda (required); auto (onnxruntime's CUDA provider where present, else CPU)",
            choices=("cpu", "cuda", "auto"),
        ),
    ]
    intra_op_threads: Annotated[
        int,
        Param(
            "onnxruntime threads (0: onnxruntime decides); 1 keeps replays reproducible and cores for the other nodes",
            unit="threads",
            range=(0, 256),
        ),
    ]
    warmup_runs: Annotated[
        int, Param("inferences on a neutral input at load, before the first frame", unit="runs", range=(0, 1000))
    ]
    precision: Annotated[str, Param("tensorrt engine precision", choices=("fp16", "fp32"))]
    engine_cache_dir: Annotated[str, Param("where built TensorRT engines are cached (~ expands)")]

    def __post_init__(self) -> None:
        check_fields(self)


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
