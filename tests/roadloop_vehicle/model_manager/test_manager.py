"""ModelManager: refusal with the running model kept, swap between frames, rollback, `current` watching."""

from __future__ import annotations

import dataclasses
import os
import shutil
from pathlib import Path
from types import ModuleType

import numpy as np
import pytest

from roadloop_core.bundle import generate_keypair
from roadloop_core.config import config_dir
from roadloop_core.contract.observation import ObservationSpec
from roadloop_vehicle.model_manager import ModelManager
from roadloop_vehicle.params import load_vehicle_params
from roadloop_vehicle.runtime import ModelInputs, RuntimeConfig

VEHICLE = load_vehicle_params(config_dir() / "vehicle.yaml")  # what the car runs on


def runtime_config(**changes: object) -> RuntimeConfig:
    """The car's runtime parameters with `changes` (validated by the schema like any config)."""
    return dataclasses.replace(VEHICLE.drive.runtime, **changes)  # type: ignore[arg-type]


OBS = ObservationSpec.from_config(config_dir() / "dataset.yaml")


def manager(
    pub: Path, models_dir: Path | None = None, observation: ObservationSpec = OBS, **cfg: object
) -> ModelManager:
    config = dataclasses.replace(
        VEHICLE.drive.model_manager,
        models_dir=str(models_dir or "/nonexistent"),
        **cfg,  # type: ignore[arg-type]
    )
    return ModelManager(config, runtime_config(warmup_runs=1), observation, pub)


def x(observation: ObservationSpec = OBS) -> ModelInputs:
    features = {"ego_state": np.array([4.0, 0, 0, 0], np.float32), "route_target": np.array([10.0, 0], np.float32)}
    if observation.camera is not None:
        features["image"] = np.full((observation.image_height, observation.image_width, 3), 50, np.uint8)
    return features


def serve(mgr: ModelManager) -> str:
    model = mgr.begin_frame()
    assert model is not None
    mgr.report(model, model.runtime.step(x()))
    return model.label


@pytest.fixture()
def v2(tmp_path: Path, fx: ModuleType, keypair: tuple[Path, Path]) -> Path:
    return fx.make_bundle(tmp_path / "tiny-v2", keypair[0], version=2)  # type: ignore[no-any-return]


def tamper_byte(bundle: Path) -> None:
    onnx = bundle / "policy.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0x01
    onnx.write_bytes(bytes(data))


def resign_with_other_key(bundle: Path, tmp_path: Path, fx: ModuleType) -> None:
    other_priv, _ = generate_keypair(tmp_path / "other")
    fresh = fx.make_bundle(tmp_path / "resigned", other_priv, version=2)
    shutil.copy(fresh / "manifest.sig", bundle / "manifest.sig")


@pytest.mark.parametrize(
    ("break_it", "reason"),
    [
        (lambda b, tmp, fx: tamper_byte(b), "sha256"),
        (lambda b, tmp, fx: resign_with_other_key(b, tmp, fx), "signature"),
        (lambda b, tmp, fx: (b / "manifest.sig").unlink(), "unsigned"),
        (lambda b, tmp, fx: (b / "extra.bin").write_bytes(b"x"), "not listed"),
    ],
)
def test_tampered_bundle_refused_and_running_model_kept(
    bundle: Path, v2: Path, keypair: tuple[Path, Path], tmp_path: Path, fx: ModuleType, break_it: object, reason: str
) -> None:
    mgr = manager(keypair[1])
    assert mgr.offer(bundle)
    assert serve(mgr) == "tiny-v1"
    break_it(v2, tmp_path, fx)  # type: ignore[operator]
    assert not mgr.offer(v2)
    refused = [e for e in mgr.drain_events() if e.kind == "refused"]
    assert len(refused) == 1 and reason in refused[0].reason
    assert serve(mgr) == "tiny-v1"  # still driving on the old one


def test_incompatible_observation_spec_refused(
    bundle: Path, keypair: tuple[Path, Path], tmp_path: Path, fx: ModuleType
) -> None:
    other = dataclasses.replace(OBS, sample_rate_hz=20.0)
    b = fx.make_bundle(tmp_path / "tiny-v3", keypair[0], version=3, observation=other)
    mgr = manager(keypair[1])
    mgr.offer(bundle)
    serve(mgr)
    assert not mgr.offer(b)
    (event,) = [e for e in mgr.drain_events() if e.kind == "refused"]
    assert "observation spec incompatible" in event.reason and "sample_rate_hz" in event.reason
    assert serve(mgr) == "tiny-v1"


@pytest.mark.parametrize(
    ("onnx_image", "message"),
    [((32, 32), "input 'image' must have shape (1, 3, "), (None, "missing model input 'image'")],
)
def test_model_tensors_that_do_not_fit_the_observation_are_refused(
    onnx_image: tuple[int, int] | None, message: str, keypair: tuple[Path, Path], tmp_path: Path, fx: ModuleType
) -> None:
    """The manifest's tensors are checked against its (= the vehicle's) observation spec: image size, camera."""
    import json

    b = fx.make_bundle(tmp_path / "tiny-v4", keypair[0], version=4)
    doc = json.loads((b / "manifest.json").read_text())
    if onnx_image is None:
        doc["inputs"] = doc["inputs"][1:]
    else:
        doc["inputs"][0]["shape"] = [1, 3, *onnx_image]
    from roadloop_core.bundle import Manifest, write_bundle

    manifest = Manifest.from_json_bytes(json.dumps(doc).encode())
    out = tmp_path / "tiny-v5"
    write_bundle(out, files={"policy.onnx": b / "policy.onnx"}, manifest=manifest, signing_key=keypair[0])
    mgr = manager(keypair[1])
    assert not mgr.offer(out)
    (event,) = [e for e in mgr.drain_events() if e.kind == "refused"]
    assert message in event.reason


def test_a_state_only_vehicle_runs_a_state_only_model(
    keypair: tuple[Path, Path], tmp_path: Path, fx: ModuleType
) -> None:
    state = dataclasses.replace(OBS, camera=None)
    b = fx.make_bundle(tmp_path / "tiny-v6", keypair[0], version=6, observation=state)
    mgr = manager(keypair[1], observation=state)
    assert mgr.offer(b)
    model = mgr.begin_frame()
    assert model is not None and "image" not in model.runtime.spec.inputs
    assert model.runtime.step(x(state)).target_speed == pytest.approx(0.5 * 4.0 + 5.0)


def test_swap_happens_between_frames_only(bundle: Path, v2: Path, keypair: tuple[Path, Path]) -> None:
    mgr = manager(keypair[1])
    mgr.offer(bundle)
    frame_model = mgr.begin_frame()
    assert frame_model is not None and frame_model.label == "tiny-v1"
    mgr.offer(v2)  # loaded (e.g. by the watcher thread) while a frame is being served
    assert mgr.active is frame_model  # the frame in flight keeps its model
    mgr.report(frame_model, frame_model.runtime.step(x()))
    assert serve(mgr) == "tiny-v2"
    kinds = [(e.kind, e.label) for e in mgr.drain_events()]
    assert kinds == [("loaded", "tiny-v1"), ("activated", "tiny-v1"), ("loaded", "tiny-v2"), ("activated", "tiny-v2")]


def test_rollback_when_new_model_produces_nan(
    bundle: Path, keypair: tuple[Path, Path], tmp_path: Path, fx: ModuleType
) -> None:
    bad = fx.make_bundle(tmp_path / "tiny-v4", keypair[0], version=4, nan=True)
    mgr = manager(keypair[1])
    mgr.offer(bundle)
    serve(mgr)
    # a NaN on the neutral warm-up input is already refused at load
    assert not mgr.offer(bad)
    assert serve(mgr) == "tiny-v1"


def test_rollback_when_nan_appears_in_service(bundle: Path, v2: Path, keypair: tuple[Path, Path]) -> None:
    mgr = manager(keypair[1])
    mgr.offer(bundle)
    serve(mgr)
    mgr.offer(v2)
    model = mgr.begin_frame()
    assert model is not None and model.label == "tiny-v2"
    out = model.runtime.step(x())
    out.waypoints[2, 0] = np.nan  # what a model that diverges on a real input hands back
    mgr.report(model, out)
    assert serve(mgr) == "tiny-v1"
    rolled = [e for e in mgr.drain_events() if e.kind == "rolled_back"]
    assert rolled and "NaN" in rolled[0].reason and rolled[0].label == "tiny-v2"


def test_rollback_after_latency_budget_missed_x_frames_in_a_row(
    bundle: Path, v2: Path, keypair: tuple[Path, Path]
) -> None:
    mgr = manager(keypair[1], latency_budget_ms=50.0, latency_strikes=3)
    mgr.offer(bundle)
    serve(mgr)
    mgr.offer(v2)

    def slow_serve() -> str:  # v2 reports the inference time of a model four times over the budget
        model = mgr.begin_frame()
        assert model is not None
        out = model.runtime.step(x())
        if model.label == "tiny-v2":
            out = dataclasses.replace(out, inference_ms=200.0)
        mgr.report(model, out)
        return model.label

    assert [slow_serve() for _ in range(4)] == ["tiny-v2", "tiny-v2", "tiny-v2", "tiny-v1"]
    (event,) = [e for e in mgr.drain_events() if e.kind == "rolled_back"]
    assert "3 frames in a row" in event.reason
    # the rolled-back version is not offered again by the watcher
    assert v2.resolve() in mgr._rejected


def test_watches_the_current_symlink(
    bundle: Path, v2: Path, keypair: tuple[Path, Path], tmp_path: Path, fx: ModuleType
) -> None:
    models = tmp_path / "MODELS"
    (models / "versions").mkdir(parents=True)
    for b in (bundle, v2):
        shutil.copytree(b, models / "versions" / b.name)
    mgr = manager(keypair[1], models_dir=models)
    assert not mgr.poll_current()  # no `current` yet

    def point_at(name: str) -> None:  # the bridge's atomic switch: new symlink + os.replace
        tmp = models / ".current.tmp"
        tmp.symlink_to(Path("versions") / name)
        os.replace(tmp, models / "current")

    point_at("tiny-v1")
    assert mgr.poll_current() and serve(mgr) == "tiny-v1"
    assert not mgr.poll_current()  # unchanged
    point_at("tiny-v2")
    assert mgr.poll_current() and serve(mgr) == "tiny-v2"
    bad = models / "versions" / "tiny-v9"
    shutil.copytree(v2, bad)
    tamper_byte(bad)
    point_at("tiny-v9")
    assert not mgr.poll_current()
    assert serve(mgr) == "tiny-v2"
    assert not mgr.poll_current()  # a refused target is not retried every poll
    assert [e.kind for e in mgr.drain_events()].count("refused") == 1


# -- issue 13: a restarted node falls back, the loader survives anything, verified bytes are loaded bytes --
def _install(models: Path, *bundles: Path) -> None:
    (models / "versions").mkdir(parents=True, exist_ok=True)
    for b in bundles:
        shutil.copytree(b, models / "versions" / b.name, symlinks=True)


def _point_at(models: Path, name: str) -> None:
    tmp = models / ".current.tmp"
    tmp.symlink_to(Path("versions") / name)
    os.replace(tmp, models / "current")


def _signed_but_unloadable(out: Path, priv: Path, fx: ModuleType, version: int) -> Path:
    """Signed by the trusted key, every hash right, but onnxruntime cannot load the model."""
    from roadloop_core.bundle import read_manifest, write_bundle

    good = fx.make_bundle(out.parent / f".{out.name}.src", priv, version=version)
    junk = out.parent / f".{out.name}.junk"
    junk.write_bytes(b"\x08\x07 not a protobuf" * 1000)
    write_bundle(out, files={"policy.onnx": junk}, manifest=read_manifest(good), signing_key=priv)
    return out


def test_a_restarted_node_falls_back_to_the_last_good_version(
    bundle: Path, keypair: tuple[Path, Path], tmp_path: Path, fx: ModuleType
) -> None:
    """The probe: `current` names a signed but unloadable bundle; a drive node that restarts must not be left
    without a model (every restarted car would stop)."""
    models = tmp_path / "MODELS"
    _install(models, bundle, _signed_but_unloadable(tmp_path / "tiny-v2", keypair[0], fx, 2))
    _point_at(models, "tiny-v2")
    restarted = manager(keypair[1], models_dir=models)
    assert restarted.poll_current()
    assert serve(restarted) == "tiny-v1"
    events = [(e.kind, e.label) for e in restarted.drain_events()]
    assert ("refused", "tiny-v2") in events and ("fell_back", "tiny-v1") in events
    assert not restarted.poll_current()  # the same `current`: nothing retried
    _install(models, v3 := fx.make_bundle(tmp_path / "tiny-v3", keypair[0], version=3))
    _point_at(models, v3.name)  # a good release later is still taken
    assert restarted.poll_current() and serve(restarted) == "tiny-v3"


def test_a_running_node_keeps_its_model_when_current_is_unloadable(
    bundle: Path, keypair: tuple[Path, Path], tmp_path: Path, fx: ModuleType
) -> None:
    models = tmp_path / "MODELS"
    _install(models, bundle, _signed_but_unloadable(tmp_path / "tiny-v2", keypair[0], fx, 2))
    _point_at(models, "tiny-v1")
    mgr = manager(keypair[1], models_dir=models)
    assert mgr.poll_current() and serve(mgr) == "tiny-v1"
    _point_at(models, "tiny-v2")
    assert not mgr.poll_current() and serve(mgr) == "tiny-v1"
    assert [e.kind for e in mgr.drain_events()].count("fell_back") == 0


@pytest.mark.parametrize(
    "break_it",
    [
        lambda b: (b / "policy.onnx").unlink() or (b / "policy.onnx").mkdir(),  # the probe: a folder
        lambda b: (b / "policy.onnx").unlink() or (b / "policy.onnx").symlink_to("/dev/zero"),
    ],
)
def test_any_fault_while_loading_is_a_refusal_and_later_updates_are_taken(
    bundle: Path, v2: Path, keypair: tuple[Path, Path], tmp_path: Path, fx: ModuleType, break_it: object
) -> None:
    models = tmp_path / "MODELS"
    _install(models, bundle, v2)
    break_it(models / "versions" / "tiny-v2")  # type: ignore[operator]
    mgr = manager(keypair[1], models_dir=models)
    _point_at(models, "tiny-v1")
    assert mgr.poll_current() and serve(mgr) == "tiny-v1"
    _point_at(models, "tiny-v2")
    assert not mgr.poll_current()
    (refused,) = [e for e in mgr.drain_events() if e.kind == "refused"]
    assert refused.label == "tiny-v2" and "regular file" in refused.reason
    _install(models, fx.make_bundle(tmp_path / "tiny-v3", keypair[0], version=3))
    _point_at(models, "tiny-v3")
    assert mgr.poll_current() and serve(mgr) == "tiny-v3"


def test_an_unexpected_exception_is_reported_not_raised(
    bundle: Path, keypair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import roadloop_vehicle.model_manager.manager as manager_module

    def broken(*_: object) -> None:
        raise RuntimeError("a bug in a backend")

    monkeypatch.setattr(manager_module, "load_model", broken)
    mgr = manager(keypair[1])
    assert not mgr.offer(bundle)
    (event,) = mgr.drain_events()
    assert (event.kind, event.reason) == ("refused", "RuntimeError: a bug in a backend")


def test_the_model_that_runs_is_built_from_the_bytes_that_were_verified(
    bundle: Path, keypair: tuple[Path, Path], tmp_path: Path, fx: ModuleType, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The probe: the file was read once to verify and again to load, so the manager reported v2 while
    running other weights. Swap the file right after verification: the verified bytes still run."""
    import roadloop_vehicle.model_manager.loader as loader_module

    b = shutil.copytree(bundle, tmp_path / "tiny-v1")
    nan_model = fx.tiny_policy(tmp_path / "nan.onnx", nan=True)
    real = loader_module.load_bundle

    def verify_then_swap(folder: Path, key: object) -> object:
        loaded = real(folder, key)  # type: ignore[arg-type]
        shutil.copy(nan_model, folder / "policy.onnx")  # replaced between verification and loading
        return loaded

    monkeypatch.setattr(loader_module, "load_bundle", verify_then_swap)
    mgr = manager(keypair[1])
    assert mgr.offer(b), mgr.drain_events()
    model = mgr.begin_frame()
    assert model is not None and model.runtime.step(x()).finite  # the verified (finite) model, not the swapped one
