"""Policy runtime: onnxruntime (default) and TensorRT backends behind one `step`."""

from roadloop_vehicle.runtime.base import IOBuffers, RuntimeConfig
from roadloop_vehicle.runtime.policy_runtime import PolicyRuntime
from roadloop_vehicle.runtime.spec import ModelInputs, ModelOutputs, PolicySpec

__all__ = ["IOBuffers", "ModelInputs", "ModelOutputs", "PolicyRuntime", "PolicySpec", "RuntimeConfig"]
