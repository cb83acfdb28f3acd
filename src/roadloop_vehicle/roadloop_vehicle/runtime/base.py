"""The backend interface and the shared preprocessing into preallocated input buffers."""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Annotated, Protocol

import numpy as np
import numpy.typing as npt

from roadloop_core.param_schema import Param, check_fields
from roadloop_vehicle.errors import ModelError
from roadloop_vehicle.runtime.spec import (
    EGO,
    IMAGE,
    ROUTE,
    TARGET_SPEED,
    WAYPOINTS,
    ModelInputs,
    ModelOutputs,
    PolicySpec,
)

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
        ego, route = spec.inputs[EGO], spec.inputs[ROUTE]
        self._ego_mean = ego.mean if ego.mean is not None else np.zeros(4, np.float32)
        self._ego_inv_std = 1.0 / ego.std if ego.std is not None else np.ones(4, np.float32)
        self._route_mean = route.mean if route.mean is not None else np.zeros(2, np.float32)
        self._route_inv_std = 1.0 / route.std if route.std is not None else np.ones(2, np.float32)
        image = spec.inputs.get(IMAGE)
        self._image_scale = np.float32(image.scale if image is not None and image.scale is not None else 1.0 / 255.0)

    def fill(self, x: ModelInputs) -> None:
        """Normalise features into the input buffers in place (no allocation per frame)."""
        if IMAGE in self.inputs:
            if x.image is None:
                raise ModelError("model needs an image but the observation has none (state-only observation spec?)")
            dst = self.inputs[IMAGE][0]
            if x.image.shape != (dst.shape[1], dst.shape[2], 3):
                raise ModelError(f"image is {x.image.shape[:2]}, model input 'image' wants {dst.shape[1:]}")
            np.multiply(x.image.transpose(2, 0, 1), self._image_scale, out=dst, casting="unsafe")
        ego = self.inputs[EGO][0]
        np.subtract(x.ego_state, self._ego_mean, out=ego)
        np.multiply(ego, self._ego_inv_std, out=ego)
        route = self.inputs[ROUTE][0]
        np.subtract(x.route_target, self._route_mean, out=route)
        np.multiply(route, self._route_inv_std, out=route)

    def result(self, inference_ms: float) -> ModelOutputs:
        return ModelOutputs(
            waypoints=self.outputs[WAYPOINTS][0].copy(),
            target_speed=float(self.outputs[TARGET_SPEED][0, 0]),
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
