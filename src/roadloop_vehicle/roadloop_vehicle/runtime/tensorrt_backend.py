"""TensorRT 10 backend: named tensors, device buffers allocated once, `execute_async_v3` on one stream.

Only runs where TensorRT, cuda-python and a GPU exist (tests marked `tensorrt`).
Host buffers are the shared IOBuffers; each frame copies inputs host->device,
enqueues the engine and copies outputs back on the same stream.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from roadloop_vehicle.errors import BackendUnavailableError, ModelError
from roadloop_vehicle.runtime.base import IOBuffers, RuntimeConfig
from roadloop_vehicle.runtime.engine_cache import import_tensorrt, load_or_build_engine

__all__ = ["TensorRTBackend"]


def _cudart() -> Any:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError as err:
            raise BackendUnavailableError(f"cuda-python is not installed here ({err})") from None
    return cudart


def _check(result: Any, what: str) -> Any:
    err, *rest = result if isinstance(result, tuple) else (result,)
    if int(err) != 0:
        raise ModelError(f"CUDA {what} failed: {err}")
    return rest[0] if len(rest) == 1 else tuple(rest)


class TensorRTBackend:
    name = "tensorrt"

    def __init__(self, model: bytes, buffers: IOBuffers, config: RuntimeConfig, where: str = "policy.onnx") -> None:
        """`model`: the ONNX bytes the engine is built from (and keyed by); `where` names it in errors."""
        trt = import_tensorrt()
        self._cudart = cudart = _cudart()
        self.buffers = buffers
        data, self.engine_path, self.built = load_or_build_engine(
            model, config.precision, Path(config.engine_cache_dir), where
        )
        self._logger = trt.Logger(trt.Logger.WARNING)
        self._runtime = trt.Runtime(self._logger)
        self.engine = self._runtime.deserialize_cuda_engine(data)
        if self.engine is None:
            raise ModelError(f"{self.engine_path}: TensorRT cannot deserialize the cached engine")
        self.context = self.engine.create_execution_context()
        self.stream = _check(cudart.cudaStreamCreate(), "cudaStreamCreate")
        self._device: dict[str, int] = {}
        self._inputs: list[str] = []
        self._outputs: list[str] = []
        host = {**buffers.inputs, **buffers.outputs}
        for i in range(self.engine.num_io_tensors):
            name = self.engine.get_tensor_name(i)
            if name not in host:
                raise ModelError(f"{self.engine_path}: engine tensor '{name}' is not in the manifest")
            shape = tuple(self.engine.get_tensor_shape(name))
            if shape != host[name].shape:
                raise ModelError(f"{self.engine_path}: tensor '{name}' is {shape}, manifest says {host[name].shape}")
            ptr = _check(cudart.cudaMalloc(host[name].nbytes), "cudaMalloc")
            self._device[name] = int(ptr)
            self.context.set_tensor_address(name, int(ptr))
            if self.engine.get_tensor_mode(name) == trt.TensorIOMode.INPUT:
                self._inputs.append(name)
            else:
                self._outputs.append(name)

    def run(self) -> None:
        cudart = self._cudart
        h2d = cudart.cudaMemcpyKind.cudaMemcpyHostToDevice
        d2h = cudart.cudaMemcpyKind.cudaMemcpyDeviceToHost
        for name in self._inputs:
            arr = self.buffers.inputs[name]
            _check(cudart.cudaMemcpyAsync(self._device[name], arr.ctypes.data, arr.nbytes, h2d, self.stream), "H2D")
        if not self.context.execute_async_v3(self.stream):
            raise ModelError("TensorRT execute_async_v3 failed")
        for name in self._outputs:
            arr = self.buffers.outputs[name]
            _check(cudart.cudaMemcpyAsync(arr.ctypes.data, self._device[name], arr.nbytes, d2h, self.stream), "D2H")
        _check(cudart.cudaStreamSynchronize(self.stream), "cudaStreamSynchronize")

    def __del__(self) -> None:
        cudart = getattr(self, "_cudart", None)
        if cudart is None:
            return
        for ptr in getattr(self, "_device", {}).values():
            cudart.cudaFree(ptr)
