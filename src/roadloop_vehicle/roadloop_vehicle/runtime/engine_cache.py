"""TensorRT engine building and the engine cache (key: onnx sha256, TensorRT version, GPU, precision).

Engines are specific to the GPU and the TensorRT version that built them, so the
vehicle builds them from the bundle's ONNX and caches them under a key that makes
a stale engine impossible to pick up. Everything here imports TensorRT lazily:
where it is absent, callers get a BackendUnavailableError that says so.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from roadloop_core.fsio import atomic_write_bytes
from roadloop_vehicle.errors import BackendUnavailableError, ModelError

__all__ = ["EngineKey", "build_engine", "cache_path", "import_tensorrt", "load_or_build_engine"]


def import_tensorrt() -> Any:
    try:
        import tensorrt as trt
    except ImportError as err:
        raise BackendUnavailableError(f"TensorRT is not installed here ({err}); use backend=onnxruntime") from None
    if int(str(trt.__version__).split(".")[0]) < 10:
        raise BackendUnavailableError(f"TensorRT {trt.__version__} found; roadloop needs TensorRT >= 10")
    return trt


def gpu_name() -> str:
    try:
        from cuda.bindings import runtime as cudart
    except ImportError:
        try:
            from cuda import cudart
        except ImportError as exc:
            raise BackendUnavailableError(f"cuda-python is not installed here ({exc})") from None
    err, props = cudart.cudaGetDeviceProperties(0)
    if int(err) != 0:
        raise BackendUnavailableError(f"no CUDA GPU available (cudaGetDeviceProperties: {err})")
    name = props.name
    return (name.decode() if isinstance(name, bytes) else str(name)).rstrip("\x00")


@dataclass(frozen=True)
class EngineKey:
    onnx_sha256: str
    trt_version: str
    gpu: str
    precision: str

    def filename(self) -> str:
        gpu = re.sub(r"[^A-Za-z0-9]+", "-", self.gpu).strip("-").lower()
        return f"{self.onnx_sha256[:16]}-trt{self.trt_version}-{gpu}-{self.precision}.engine"


def cache_path(cache_dir: Path, key: EngineKey) -> Path:
    return Path(os.path.expanduser(str(cache_dir))) / key.filename()


def build_engine(model: bytes, precision: str, workspace_mb: int = 1024, where: str = "policy.onnx") -> bytes:
    """Build a serialized TensorRT 10 engine from the ONNX bytes `model` (explicit batch, named tensors)."""
    trt = import_tensorrt()
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    network = builder.create_network(0)  # TensorRT 10: networks are always explicit-batch
    parser = trt.OnnxParser(network, logger)
    if not parser.parse(model):
        errors = "; ".join(str(parser.get_error(i)) for i in range(parser.num_errors))
        raise ModelError(f"{where}: TensorRT cannot parse the ONNX: {errors}")
    config = builder.create_builder_config()
    config.set_memory_pool_limit(trt.MemoryPoolType.WORKSPACE, workspace_mb << 20)
    if precision == "fp16":
        if not builder.platform_has_fast_fp16:
            raise BackendUnavailableError("precision fp16 requested but this GPU has no fast fp16; use fp32")
        config.set_flag(trt.BuilderFlag.FP16)
    serialized = builder.build_serialized_network(network, config)
    if serialized is None:
        raise ModelError(f"{where}: TensorRT failed to build an engine (see the TensorRT log above)")
    return bytes(serialized)


def load_or_build_engine(
    model: bytes, precision: str, cache_dir: Path, where: str = "policy.onnx"
) -> tuple[bytes, Path, bool]:
    """(engine bytes, cache file, whether it was built now) for the ONNX bytes `model`. Writes the cache atomically."""
    trt = import_tensorrt()
    key = EngineKey(hashlib.sha256(model).hexdigest(), str(trt.__version__), gpu_name(), precision)
    path = cache_path(cache_dir, key)
    if path.is_file():
        return path.read_bytes(), path, False
    data = build_engine(model, precision, where=where)
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, data)
    return data, path, True
