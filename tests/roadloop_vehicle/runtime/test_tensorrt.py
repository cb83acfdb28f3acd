"""TensorRT backend and `roadloop engine build`: real where TensorRT + a GPU exist, else the clear refusal."""

from __future__ import annotations

import dataclasses
import importlib.util
from pathlib import Path

import numpy as np
import pytest

from roadloop_core.bundle import read_manifest
from roadloop_core.cli import main
from roadloop_core.config import config_dir
from roadloop_vehicle.params import load_vehicle_params
from roadloop_vehicle.runtime import ModelInputs, PolicyRuntime, PolicySpec, RuntimeConfig
from roadloop_vehicle.runtime.engine_cache import EngineKey

VEHICLE = load_vehicle_params(config_dir() / "vehicle.yaml")  # what the car runs on


def runtime_config(**changes: object) -> RuntimeConfig:
    """The car's runtime parameters with `changes` (validated by the schema like any config)."""
    return dataclasses.replace(VEHICLE.drive.runtime, **changes)  # type: ignore[arg-type]


HAVE_TRT = importlib.util.find_spec("tensorrt") is not None


def test_engine_cache_key_names_every_component() -> None:
    key = EngineKey("ab" * 32, "10.3.0", "NVIDIA Orin (nvgpu)", "fp16")
    name = key.filename()
    assert name.startswith("abababababababab-trt10.3.0-nvidia-orin-nvgpu-fp16")
    assert EngineKey("ab" * 32, "10.3.0", "NVIDIA Orin (nvgpu)", "fp32").filename() != name
    assert EngineKey("cd" * 32, "10.3.0", "NVIDIA Orin (nvgpu)", "fp16").filename() != name


@pytest.mark.skipif(HAVE_TRT, reason="TensorRT is installed: the real build test below runs instead")
def test_engine_build_without_tensorrt_exits_2(bundle: Path, capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["engine", "build", str(bundle), "--precision", "fp32"])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert "TensorRT is not installed" in err and "\n" not in err


@pytest.mark.tensorrt
@pytest.mark.skipif(not HAVE_TRT, reason="TensorRT is not installed on this machine (needs TensorRT >= 10 + a GPU)")
def test_tensorrt_matches_onnxruntime(bundle: Path, tmp_path: Path) -> None:
    spec = PolicySpec.from_manifest(read_manifest(bundle))
    cfg = runtime_config(backend="tensorrt", precision="fp32", engine_cache_dir=str(tmp_path))
    trt_rt = PolicyRuntime(bundle / "policy.onnx", spec, cfg)
    ort_rt = PolicyRuntime(bundle / "policy.onnx", spec, runtime_config())
    _, _, h, w = spec.inputs["image"].shape
    x: ModelInputs = {
        "image": np.full((h, w, 3), 99, np.uint8),
        "ego_state": np.arange(4, dtype=np.float32),
        "route_target": np.array([8.0, 1.0], np.float32),
    }
    a, b = trt_rt.step(x), ort_rt.step(x)
    np.testing.assert_allclose(a.waypoints, b.waypoints, rtol=1e-4, atol=1e-4)
    assert a.target_speed == pytest.approx(b.target_speed, rel=1e-4)
    # second load comes from the cache
    again = PolicyRuntime(bundle / "policy.onnx", spec, cfg)
    assert not again.backend.built  # type: ignore[attr-defined]
