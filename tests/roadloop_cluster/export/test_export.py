"""`roadloop export`: ONNX parity with torch through onnxruntime, a bundle per contract, signatures that bite."""

from __future__ import annotations

import dataclasses
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest

from roadloop_cluster.export import OPSET, check_parity, export_bundle, export_onnx, load_run
from roadloop_cluster.export.onnx_export import parity_samples
from roadloop_cluster.train.errors import ExportError
from roadloop_core.bundle import verify_bundle
from roadloop_core.errors import BundleError


@pytest.mark.parametrize("variant", ["camera", "state"])
def test_bundle_follows_the_contract_and_verifies(
    variant: str, trained_runs: dict[str, tuple[Path, Path]], keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    run, data = trained_runs[variant]
    key, pub = keypair
    out = tmp_path / "bundle"
    manifest = export_bundle(run, out, key, version=7)
    assert sorted(p.name for p in out.iterdir()) == ["manifest.json", "manifest.sig", "policy.onnx"]
    assert verify_bundle(out, pub).version == 7

    doc = json.loads((out / "manifest.json").read_text())
    assert doc["format"] == "roadloop-bundle/1" and doc["version"] == 7
    names = [t["name"] for t in doc["inputs"]]
    assert names == (["image", "ego_state", "route_target"] if variant == "camera" else ["ego_state", "route_target"])
    index = json.loads((data / "index.json").read_text())
    ego = next(t for t in doc["inputs"] if t["name"] == "ego_state")
    assert ego["shape"] == [1, 4] and np.allclose(ego["normalization"]["mean"], index["stats"]["ego_state"]["mean"])
    if variant == "camera":  # the dataset's 48x32 images: no training config says so
        assert doc["inputs"][0]["shape"] == [1, 3, 32, 48]
        assert doc["inputs"][0]["normalization"] == {"scale": 1 / 255}
    assert doc["outputs"] == [
        {"name": "waypoints", "shape": [1, 6, 2], "dtype": "float32"},
        {"name": "target_speed", "shape": [1, 1], "dtype": "float32"},
    ]
    assert doc["observation"] == index["observation"] and doc["dataset_id"] == index["dataset_id"]
    assert not {"variant", "image_size", "horizon", "dt"} & set(doc["training_config"]["model"])
    assert {"l2_1s", "l2_2s", "l2_3s", "ade", "fde"} <= set(doc["metrics"]["open_loop"])
    assert set(doc["metrics"]["baselines"]) == {"constant_velocity", "ego_mlp", "kinematic_ctra"}
    assert doc["metrics"]["parity"]["max_abs_diff"] <= 1e-4 == doc["metrics"]["parity"]["tolerance"]
    assert manifest.files["policy.onnx"] == doc["files"]["policy.onnx"]

    model = onnx.load(str(out / "policy.onnx"))
    assert max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= OPSET


@pytest.mark.parametrize("victim", ["policy.onnx", "manifest.json", "manifest.sig"])
@pytest.mark.parametrize("where", [0, -1, 0.5])
def test_one_byte_change_anywhere_fails_verification(
    victim: str, where: float, trained_runs: dict[str, tuple[Path, Path]], keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    key, pub = keypair
    out = tmp_path / "bundle"
    export_bundle(trained_runs["state"][0], out, key, version=1)
    path = out / victim
    data = bytearray(path.read_bytes())
    pos = int(where * (len(data) - 1)) if isinstance(where, float) else where
    data[pos] ^= 0x01
    path.write_bytes(bytes(data))
    with pytest.raises(BundleError):
        verify_bundle(out, pub)


def test_wrong_key_fails_verification(
    trained_runs: dict[str, tuple[Path, Path]], keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    from roadloop_core.bundle import generate_keypair

    out = tmp_path / "bundle"
    export_bundle(trained_runs["state"][0], out, keypair[0], version=1)
    _, other_pub = generate_keypair(tmp_path / "other")
    with pytest.raises(BundleError, match="signature"):
        verify_bundle(out, other_pub)


def test_parity_violation_fails_the_export(trained_runs: dict[str, tuple[Path, Path]], tmp_path: Path) -> None:
    run = load_run(trained_runs["camera"][0])
    path = tmp_path / "policy.onnx"
    export_onnx(run.model, path)
    samples = parity_samples(run, None, 4)
    assert check_parity(run.model, path, samples) <= 1e-4
    # nudge one weight of the exported graph by 1e-2: torch and onnxruntime must now disagree
    proto = onnx.load(str(path))
    init = max(proto.graph.initializer, key=lambda t: int(np.prod(t.dims)))
    arr = onnx.numpy_helper.to_array(init).copy()
    arr.flat[0] += 1e-2 if arr.size > 1 else 1.0
    arr += 1e-2
    init.CopyFrom(onnx.numpy_helper.from_array(arr, init.name))
    onnx.save(proto, str(path))
    with pytest.raises(ExportError, match=r"parity check failed on validation sample 0: max \|onnx - torch\|"):
        check_parity(run.model, path, samples)


def _constant_onnx(path: Path, waypoints: float, speed: float) -> None:
    """A graph that answers constant outputs whatever its (image, ego_state) inputs."""
    from onnx import TensorProto, helper

    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("image", "ego_state")]
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("waypoints", "target_speed")]
    nodes = [
        helper.make_node("Constant", [], [name], value=helper.make_tensor(name, TensorProto.FLOAT, shape, [value] * n))
        for name, shape, n, value in (("waypoints", [1, 2, 2], 4, waypoints), ("target_speed", [1, 1], 1, speed))
    ]
    graph = helper.make_graph(nodes, "constant", inputs, outputs)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)]), str(path))


@pytest.mark.parametrize(
    ("torch_value", "onnx_value", "ok"),
    [
        (391.0, 391.0 + 1.2e-4, True),  # 4 float32 ulp of a far waypoint: kernel summation order
        (391.0, 391.1, False),  # 2.6e-4 of the value
        (0.5, 0.5 + 5e-5, True),
        (0.5, 0.5 + 2e-4, False),  # below 1 the tolerance is absolute
    ],
)
def test_parity_tolerance_scales_with_the_value(
    tmp_path: Path, torch_value: float, onnx_value: float, ok: bool
) -> None:
    import torch

    path = tmp_path / "constant.onnx"
    _constant_onnx(path, onnx_value, 1.0)

    def model(inputs: dict[str, torch.Tensor]) -> tuple[torch.Tensor, torch.Tensor]:
        return torch.full((1, 2, 2), torch_value), torch.ones((1, 1))

    samples = [{"image": np.zeros((1, 3, 2, 2), np.float32), "ego_state": np.zeros((1, 4), np.float32)}]
    if ok:
        assert check_parity(model, path, samples) == pytest.approx(
            abs(np.float32(onnx_value) - np.float32(torch_value))
        )  # type: ignore[arg-type]
    else:
        with pytest.raises(ExportError, match="parity check failed"):
            check_parity(model, path, samples)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("remove", "message"),
    [("model.pt", "model.pt: missing"), ("run.json", "run.json: missing"), ("metrics.json", "metrics.json: missing")],
)
def test_incomplete_run_is_refused(
    remove: str, message: str, trained_runs: dict[str, tuple[Path, Path]], keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_runs["state"][0], run, ignore=shutil.ignore_patterns("checkpoints", "tb"))
    (run / remove).unlink()
    with pytest.raises(ExportError, match=message):
        export_bundle(run, tmp_path / "bundle", keypair[0])
    assert not (tmp_path / "bundle").exists()


def test_cli_exports_and_the_vehicle_runtime_runs_the_bundle(
    trained_runs: dict[str, tuple[Path, Path]], keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    run, data = trained_runs["camera"]
    out = tmp_path / "bundle"
    roadloop = str(Path(sys.executable).parent / "roadloop")
    cli = [roadloop, "export", str(run), "--out", str(out), "--sign-key", str(keypair[0])]
    done = subprocess.run([*cli, "--version", "3"], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "parity max |onnx - torch|" in done.stdout
    verify = [roadloop, "bundle", "verify", str(out), "-k", str(keypair[1])]
    assert subprocess.run(verify, capture_output=True).returncode == 0

    again = subprocess.run(cli, capture_output=True, text=True)
    assert again.returncode == 2 and again.stderr.strip().endswith("already exists")
    assert len(again.stderr.strip().splitlines()) == 1

    # The vehicle's runtime normalises raw features itself (manifest) and must get what torch gets.
    import torch

    from roadloop_cluster.train.data import SplitData, read_dataset_info
    from roadloop_core.config import config_dir
    from roadloop_core.contract.tensors import model_inputs
    from roadloop_vehicle.params import load_vehicle_params
    from roadloop_vehicle.runtime.policy_runtime import PolicyRuntime
    from roadloop_vehicle.runtime.spec import PolicySpec

    spec = PolicySpec.from_manifest(verify_bundle(out, keypair[1]))
    runtime = PolicyRuntime(
        out / "policy.onnx",
        spec,
        dataclasses.replace(load_vehicle_params(config_dir() / "vehicle.yaml").drive.runtime, warmup_runs=1),
    )
    info = read_dataset_info(data)
    val = SplitData(info, "val", model_inputs(info.observation))
    model = load_run(run).model
    for i in (0, 7):
        raw = {name: val.arrays[name][i] for name in ("image", "ego_state", "route_target")}  # the features
        got = runtime.step(raw)
        b = val.batch(np.asarray([i], np.int64))
        with torch.no_grad():
            wp, speed = model(b.inputs)
        assert np.abs(got.waypoints.reshape(-1, 2) - wp[0].numpy()).max() <= 1e-4
        assert abs(got.target_speed - float(speed)) <= 1e-4


@pytest.mark.slow
def test_the_unchanged_train_yaml_trains_and_exports_any_image_size_and_horizon(
    camera_dataset: Path, keypair: tuple[Path, Path], tmp_path: Path, repo_root: Path
) -> None:
    """config/train.yaml as shipped on a 48x32, 6-waypoint dataset (config/dataset.yaml says 64x64, 8):
    the model takes both from the dataset; nothing is rewritten, nothing has to be kept in step."""
    from roadloop_vehicle.params import load_vehicle_params
    from roadloop_vehicle.runtime.policy_runtime import PolicyRuntime
    from roadloop_vehicle.runtime.spec import PolicySpec

    roadloop = str(Path(sys.executable).parent / "roadloop")
    run, out = tmp_path / "run", tmp_path / "bundle"
    train = [roadloop, "train", "--config", str(repo_root / "config" / "train.yaml"), "--data", str(camera_dataset)]
    done = subprocess.run([*train, "--out", str(run), "--nproc", "1"], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    export = [roadloop, "export", str(run), "--out", str(out), "--sign-key", str(keypair[0]), "--version", "2"]
    done = subprocess.run(export, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]
    manifest = verify_bundle(out, keypair[1])
    assert (manifest.inputs[0].name, manifest.inputs[0].shape) == ("image", (1, 3, 32, 48))
    assert [(t.name, t.shape) for t in manifest.outputs] == [("waypoints", (1, 6, 2)), ("target_speed", (1, 1))]
    assert (manifest.observation.image_width, manifest.observation.label_horizon) == (48, 6)
    runtime_cfg = dataclasses.replace(
        load_vehicle_params(repo_root / "config" / "vehicle.yaml").drive.runtime, warmup_runs=1
    )
    runtime = PolicyRuntime(out / "policy.onnx", PolicySpec.from_manifest(manifest), runtime_cfg)
    warm = runtime.warmup(1)
    assert warm is not None and warm.finite and warm.waypoints.shape == (6, 2)


def test_a_run_trained_before_the_dataset_decided_the_sizes_still_exports(
    trained_runs: dict[str, tuple[Path, Path]], keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    """Older run.json files carry model.variant/image_size/horizon/dt: ignored, the run's observation decides."""
    import shutil

    run = tmp_path / "run"
    shutil.copytree(trained_runs["camera"][0], run, ignore=shutil.ignore_patterns("checkpoints", "tb"))
    meta = json.loads((run / "run.json").read_text())
    meta["config"]["model"] |= {"variant": "camera", "image_size": [32, 48], "horizon": 6, "dt": 0.5}
    (run / "run.json").write_text(json.dumps(meta))
    manifest = export_bundle(run, tmp_path / "bundle", keypair[0], version=5)
    assert manifest.inputs[0].shape == (1, 3, 32, 48)
