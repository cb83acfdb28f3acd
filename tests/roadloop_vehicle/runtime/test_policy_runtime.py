"""PolicyRuntime on onnxruntime: contract tensors, normalisation, reused buffers, warm-up, errors."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from roadloop_core.bundle import Manifest, read_manifest
from roadloop_core.config import config_dir
from roadloop_vehicle.errors import ModelError
from roadloop_vehicle.params import load_vehicle_params
from roadloop_vehicle.runtime import ModelInputs, PolicyRuntime, PolicySpec, RuntimeConfig

VEHICLE = load_vehicle_params(config_dir() / "vehicle.yaml")  # what the car runs on


def runtime_config(**changes: object) -> RuntimeConfig:
    """The car's runtime parameters with `changes` (validated by the schema like any config)."""
    return dataclasses.replace(VEHICLE.drive.runtime, **changes)  # type: ignore[arg-type]


def spec_of(bundle: Path) -> PolicySpec:
    return PolicySpec.from_manifest(read_manifest(bundle))


def features(image: np.ndarray, ego: np.ndarray, route: np.ndarray) -> ModelInputs:
    return {"image": image, "ego_state": ego, "route_target": route}


def hw(bundle: Path) -> tuple[int, int]:
    shape = spec_of(bundle).inputs["image"].shape
    return shape[2], shape[3]


def expected(image: np.ndarray, ego: np.ndarray, route: np.ndarray, k: int = 8) -> tuple[np.ndarray, float]:
    steps = np.arange(1, k + 1, dtype=np.float32)[:, None] / k
    return route[None, :] * steps + image.astype(np.float32).mean() / 255 * 1e-3, 0.5 * float(ego[0]) + 5.0


def test_outputs_match_the_graph(bundle: Path) -> None:
    rt = PolicyRuntime(bundle / "policy.onnx", spec_of(bundle), runtime_config(warmup_runs=1))
    rng = np.random.default_rng(1)
    for _ in range(3):
        img = rng.integers(0, 256, (*hw(bundle), 3), dtype=np.uint8)
        ego = rng.normal(size=4).astype(np.float32)
        route = rng.normal(size=2).astype(np.float32) * 10
        out = rt.step(features(img, ego, route))
        wp, speed = expected(img, ego, route)
        np.testing.assert_allclose(out.waypoints, wp, rtol=1e-5, atol=1e-5)
        assert out.target_speed == pytest.approx(speed, rel=1e-5)
        assert out.inference_ms > 0 and out.finite


def test_normalisation_from_the_manifest_is_applied(tmp_path: Path, fx: ModuleType, keypair: tuple[Path, Path]) -> None:
    b = fx.make_bundle(tmp_path / "norm", keypair[0])
    spec = spec_of(b)
    spec.inputs["ego_state"] = dataclasses.replace(
        spec.inputs["ego_state"], mean=np.array([2.0, 0, 0, 0], np.float32), std=np.array([4.0, 1, 1, 1], np.float32)
    )
    rt = PolicyRuntime(b / "policy.onnx", spec, runtime_config(warmup_runs=0))
    img = np.zeros((*hw(b), 3), np.uint8)
    out = rt.step(features(img, np.array([10.0, 0, 0, 0], np.float32), np.zeros(2, np.float32)))
    assert out.target_speed == pytest.approx(0.5 * (10.0 - 2.0) / 4.0 + 5.0)


def test_buffers_are_preallocated_and_reused(bundle: Path) -> None:
    rt = PolicyRuntime(bundle / "policy.onnx", spec_of(bundle), runtime_config(warmup_runs=2))
    bufs = rt.backend.buffers
    ids = {k: v.ctypes.data for k, v in {**bufs.inputs, **bufs.outputs}.items()}
    x = features(np.full((*hw(bundle), 3), 7, np.uint8), np.ones(4, np.float32), np.ones(2, np.float32))
    first = rt.step(x)
    second = rt.step(x)
    assert {k: v.ctypes.data for k, v in {**bufs.inputs, **bufs.outputs}.items()} == ids
    assert first.waypoints is not second.waypoints  # results are copies the caller may keep
    np.testing.assert_array_equal(first.waypoints, second.waypoints)


def test_wrong_image_size_is_a_clear_error(bundle: Path) -> None:
    rt = PolicyRuntime(bundle / "policy.onnx", spec_of(bundle), runtime_config(warmup_runs=0))
    with pytest.raises(ModelError, match=r"feature 'image' is \(31, 17, 3\), model input 'image' wants"):
        rt.step(features(np.zeros((31, 17, 3), np.uint8), np.zeros(4, np.float32), np.zeros(2, np.float32)))
    with pytest.raises(ModelError, match="model input 'image' needs feature 'image'"):
        rt.step({"ego_state": np.zeros(4, np.float32), "route_target": np.zeros(2, np.float32)})


def test_auto_device_falls_back_to_cpu_without_cuda(bundle: Path) -> None:
    import onnxruntime as ort

    rt = PolicyRuntime(bundle / "policy.onnx", spec_of(bundle), runtime_config(device="auto", warmup_runs=0))
    expected = "CUDAExecutionProvider" if "CUDAExecutionProvider" in ort.get_available_providers() else "CPU"
    assert rt.backend.providers[0].startswith(expected)  # type: ignore[attr-defined]


def test_cuda_device_without_provider_says_so(bundle: Path) -> None:
    import onnxruntime as ort

    if "CUDAExecutionProvider" in ort.get_available_providers():
        pytest.skip("this machine has the CUDA provider")
    with pytest.raises(Exception, match="CUDAExecutionProvider"):
        PolicyRuntime(bundle / "policy.onnx", spec_of(bundle), runtime_config(device="cuda"))


@pytest.mark.parametrize(
    ("mutate", "message"),
    [
        (lambda m: m["inputs"].pop(1), "ego_state"),
        (lambda m: m["outputs"][0].update(shape=[1, 8, 3]), "waypoints"),
        (lambda m: m["outputs"][1].update(shape=[1, 2]), "target_speed"),
        (lambda m: m["inputs"][0].update(shape=[1, 1, 64, 64]), "image"),
        (lambda m: m["inputs"].append({"name": "lidar", "shape": [1, 9]}), "lidar"),
        (lambda m: m["inputs"][1].update(normalization={"mean": [0] * 4, "std": [1, 0, 1, 1]}), "std"),
    ],
)
def test_manifest_tensor_contract_is_checked(bundle: Path, mutate: object, message: str) -> None:
    raw = json.loads(read_manifest(bundle).to_json_bytes())
    mutate(raw)  # type: ignore[operator]
    with pytest.raises(ModelError, match=message):
        PolicySpec.from_manifest(Manifest.from_json_bytes(json.dumps(raw).encode()))


def test_onnx_that_does_not_match_the_manifest(tmp_path: Path, fx: ModuleType, bundle: Path) -> None:
    other = fx.tiny_policy(tmp_path / "p.onnx", *hw(bundle), horizon=4)
    with pytest.raises(ModelError, match=r"onnxruntime|match"):
        rt = PolicyRuntime(other, spec_of(bundle), runtime_config(warmup_runs=1))
        rt.step(features(np.zeros((*hw(bundle), 3), np.uint8), np.zeros(4, np.float32), np.zeros(2, np.float32)))


def test_garbage_onnx_is_refused(tmp_path: Path, bundle: Path) -> None:
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(b"not a model")
    with pytest.raises(ModelError, match="cannot load"):
        PolicyRuntime(bad, spec_of(bundle), runtime_config())
