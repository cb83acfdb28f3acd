"""PolicyRuntime: one model, one backend, preallocated buffers, warmed up at load."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from roadloop_vehicle.runtime.base import Backend, IOBuffers, RuntimeConfig, timed_run
from roadloop_vehicle.runtime.spec import IMAGE, ModelInputs, ModelOutputs, PolicySpec

__all__ = ["PolicyRuntime"]


class PolicyRuntime:
    """`step(ModelInputs) -> ModelOutputs` (with the measured inference time of that frame)."""

    def __init__(self, onnx_path: Path, spec: PolicySpec, config: RuntimeConfig) -> None:
        self.spec = spec
        self.config = config
        buffers = IOBuffers(spec)
        self.backend: Backend
        if config.backend == "tensorrt":
            from roadloop_vehicle.runtime.tensorrt_backend import TensorRTBackend

            self.backend = TensorRTBackend(onnx_path, buffers, config)
        else:
            from roadloop_vehicle.runtime.onnx_backend import OnnxBackend

            self.backend = OnnxBackend(onnx_path, buffers, config)
        self.warmup(config.warmup_runs)

    def warmup(self, runs: int) -> ModelOutputs | None:
        """Run on a neutral input so the first real frame does not pay allocation/JIT costs."""
        image = None
        if IMAGE in self.spec.inputs:
            _, _, h, w = self.spec.inputs[IMAGE].shape
            image = np.full((h, w, 3), 128, np.uint8)
        x = ModelInputs(image=image, ego_state=np.zeros(4, np.float32), route_target=np.array([10.0, 0.0], np.float32))
        out = None
        for _ in range(runs):
            out = self.step(x)
        return out

    def step(self, x: ModelInputs) -> ModelOutputs:
        return timed_run(self.backend, x)
