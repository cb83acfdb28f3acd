"""PolicyRuntime: one model, one backend, preallocated buffers, warmed up at load.

The model is taken as bytes (what `load_bundle` verified): the engine is built from exactly the
bytes whose sha256 was checked, never from a file read a second time.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from roadloop_core.contract.tensors import ROUTE_TARGET_ARRAY
from roadloop_vehicle.errors import ModelError
from roadloop_vehicle.runtime.base import Backend, IOBuffers, RuntimeConfig, timed_run
from roadloop_vehicle.runtime.spec import ModelInputs, ModelOutputs, PolicySpec

__all__ = ["PolicyRuntime"]


class PolicyRuntime:
    """`step(ModelInputs) -> ModelOutputs` (with the measured inference time of that frame)."""

    def __init__(self, onnx: bytes | Path, spec: PolicySpec, config: RuntimeConfig, where: str = "") -> None:
        """`onnx`: the model's bytes (or a file, read once here); `where` names it in errors."""
        self.spec = spec
        self.config = config
        if isinstance(onnx, Path):
            where = where or str(onnx)
            try:
                onnx = onnx.read_bytes()
            except OSError as err:
                raise ModelError(f"{where}: cannot read the model: {err.strerror}") from err
        where = where or "policy.onnx"
        buffers = IOBuffers(spec)
        self.backend: Backend
        if config.backend == "tensorrt":
            from roadloop_vehicle.runtime.tensorrt_backend import TensorRTBackend

            self.backend = TensorRTBackend(onnx, buffers, config, where)
        else:
            from roadloop_vehicle.runtime.onnx_backend import OnnxBackend

            self.backend = OnnxBackend(onnx, buffers, config, where)
        self.warmup(config.warmup_runs)

    def warmup(self, runs: int) -> ModelOutputs | None:
        """Run on a neutral input so the first real frame does not pay allocation/JIT costs: mid-grey
        images, zero vectors, and a route target 10 m straight ahead."""
        x: dict[str, np.ndarray] = {}
        for s in self.spec.inputs.values():
            t = s.tensor
            shape = s.shape[1:]
            if t.channels_first:
                shape = (*shape[1:], shape[0])
            x[t.array.name] = np.full(shape, 128 if t.array.dtype == "uint8" else 0, np.dtype(t.array.dtype))
        if ROUTE_TARGET_ARRAY.name in x:
            x[ROUTE_TARGET_ARRAY.name][ROUTE_TARGET_ARRAY.field("x")] = 10.0
        out = None
        for _ in range(runs):
            out = self.step(x)
        return out

    def step(self, x: ModelInputs) -> ModelOutputs:
        return timed_run(self.backend, x)
