"""onnxruntime backend: inputs and outputs bound once (IOBinding) to the reused numpy buffers."""

from __future__ import annotations

import onnxruntime as ort

from roadloop_vehicle.errors import BackendUnavailableError, ModelError
from roadloop_vehicle.runtime.base import IOBuffers, RuntimeConfig

__all__ = ["OnnxBackend"]


class OnnxBackend:
    name = "onnxruntime"

    def __init__(self, model: bytes, buffers: IOBuffers, config: RuntimeConfig, where: str = "policy.onnx") -> None:
        """`model`: the ONNX bytes (the session is built from them, never from a file); `where` names it."""
        self.buffers = buffers
        available = ort.get_available_providers()
        if config.device == "cuda" and "CUDAExecutionProvider" not in available:
            raise BackendUnavailableError(
                f"device=cuda but onnxruntime here has no CUDAExecutionProvider (available: {', '.join(available)})"
            )
        # Buffers live in host memory, so CUDA runs copy in/out; TensorRT is the zero-copy GPU path.
        use_cuda = config.device == "cuda" or (config.device == "auto" and "CUDAExecutionProvider" in available)
        providers = ["CUDAExecutionProvider", "CPUExecutionProvider"] if use_cuda else ["CPUExecutionProvider"]
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = config.intra_op_threads
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        opts.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        opts.log_severity_level = 3
        try:
            self.session = ort.InferenceSession(model, sess_options=opts, providers=providers)
        except Exception as err:  # onnxruntime raises its own Fail/InvalidGraph/... types
            first = (str(err).splitlines() or [type(err).__name__])[0]
            raise ModelError(f"{where}: onnxruntime cannot load the model: {first}") from err
        self.providers = self.session.get_providers()
        names_in = {i.name for i in self.session.get_inputs()}
        names_out = {o.name for o in self.session.get_outputs()}
        if names_in != set(buffers.inputs) or not set(buffers.outputs) <= names_out:
            raise ModelError(
                f"{where}: tensors {sorted(names_in)} -> {sorted(names_out)} do not match the manifest "
                f"{sorted(buffers.inputs)} -> {sorted(buffers.outputs)}"
            )
        self._binding = self.session.io_binding()
        # OrtValues over the numpy buffers: no copy, so filling the arrays in place is all a frame needs.
        self._values = []
        for name, arr in buffers.inputs.items():
            value = ort.OrtValue.ortvalue_from_numpy(arr)
            self._values.append(value)
            self._binding.bind_ortvalue_input(name, value)
        for name, arr in buffers.outputs.items():
            value = ort.OrtValue.ortvalue_from_numpy(arr)
            self._values.append(value)
            self._binding.bind_ortvalue_output(name, value)

    def run(self) -> None:
        try:
            self.session.run_with_iobinding(self._binding)
        except Exception as err:
            raise ModelError(f"onnxruntime inference failed: {str(err).splitlines()[0]}") from err
