"""The registry end to end: publish (hub verifies), pull (vehicle verifies again), switch, rollback, refusals."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path
from types import ModuleType

import pytest

from roadloop_core.bundle import Manifest, TensorSpec, generate_keypair, write_bundle
from roadloop_core.config import config_dir
from roadloop_core.contract.wire import TarStream
from roadloop_core.features import ObservationSpec
from roadloop_vehicle.bridge import Bridge, BridgeConfig, PullResult
from roadloop_vehicle.params import load_vehicle_params


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    priv, pub = generate_keypair(tmp_path / "keys")
    other, _ = generate_keypair(tmp_path / "other")
    return {"priv": priv, "pub": pub, "other": other}


def make_bundle(
    out: Path, key: Path, version: int, payload: bytes | None = None, observation: ObservationSpec | None = None
) -> Path:
    src = out.parent / f"{out.name}.onnx"
    src.write_bytes(payload if payload is not None else os.urandom(300_000))
    manifest = Manifest(
        name="pilot",
        version=version,
        inputs=(TensorSpec("ego_state", (1, 4), normalization={"mean": [0.0] * 4, "std": [1.0] * 4}),),
        outputs=(TensorSpec("waypoints", (1, 8, 2)), TensorSpec("target_speed", (1, 1))),
        observation=observation or ObservationSpec.from_config(config_dir() / "dataset.yaml"),
    )
    write_bundle(out, files={"policy.onnx": src}, manifest=manifest, signing_key=key)
    return out


def hub_cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "roadloop_hub", *args], capture_output=True, text=True)


def publish(hub, admin_file: Path, bundle: Path, channel: str = "production") -> subprocess.CompletedProcess[str]:
    return hub_cli("publish", str(bundle), "--hub", hub.url, "--token-file", str(admin_file), "--channel", channel)


@pytest.fixture
def fleet(hub_proc, keys, tmp_path: Path):
    hub = hub_proc(public_key=keys["pub"])
    admin = tmp_path / "admin.token"
    admin.write_text(hub.admin)
    watch = tmp_path / "rec"
    watch.mkdir()
    return hub, admin, hub.token_file("car1", tmp_path), watch


def post_bundle(hub, bundle: Path, channel: str = "production") -> dict:
    """Publish in-process over HTTP (the same request `roadloop hub publish` sends) to the hub process."""
    stream = TarStream(bundle)
    with hub.client(hub.admin) as c:
        r = c.post(f"/v1/channels/{channel}/bundles", content=stream.read(0, stream.size))
    assert r.status_code == 201, r.text
    return r.json()


def pull_once(fleet, keys, tmp_path: Path, golden: Path | None = None) -> PullResult:
    """One bridge pass in-process against the hub process (the CLI path is covered by `pull`)."""
    hub, _, token, watch = fleet
    cfg = replace(
        BridgeConfig(),
        settle_s=0.0,
        models_dir=str(tmp_path / "models"),
        public_key=str(keys["pub"]),
        golden_bag=str(golden) if golden else "",
    )
    vehicle = load_vehicle_params(config_dir() / "vehicle.yaml")  # as `roadloop bridge run` loads it
    bridge = Bridge(cfg, watch, hub.url, token.read_text().strip(), tmp_path / "state", vehicle=vehicle)
    try:
        report = bridge.run_once()
    finally:
        bridge.close()
    assert report.model is not None and not report.errors, report.errors
    return report.model


def pull(fleet, keys, tmp_path: Path, run_bridge, *extra: str) -> subprocess.CompletedProcess[str]:
    hub, _, token, watch = fleet
    models = tmp_path / "models"
    return run_bridge(watch, hub, token, tmp_path / "state", "--models", str(models), "--public-key", str(keys["pub"]),
                      *extra)  # fmt: skip


def test_publish_pull_switch_and_rollback(fleet, keys, tmp_path: Path, run_bridge) -> None:
    hub, admin, _token, _ = fleet
    models = tmp_path / "models"
    b1 = make_bundle(tmp_path / "b1", keys["priv"], 1)
    r = publish(hub, admin, b1)
    assert r.returncode == 0, r.stderr
    assert "pilot v1" in r.stdout
    done = pull(fleet, keys, tmp_path, run_bridge)
    assert done.returncode == 0, done.stderr
    assert "model: installed pilot-v1" in done.stdout
    assert os.readlink(models / "current") == "versions/pilot-v1"
    assert (models / "current" / "policy.onnx").read_bytes() == (b1 / "policy.onnx").read_bytes()
    assert pull_once(fleet, keys, tmp_path) == PullResult("unchanged", "pilot-v1")

    post_bundle(hub, make_bundle(tmp_path / "b2", keys["priv"], 2))
    assert pull_once(fleet, keys, tmp_path) == PullResult("installed", "pilot-v2")
    assert os.readlink(models / "current") == "versions/pilot-v2"
    assert sorted(p.name for p in (models / "versions").iterdir()) == ["pilot-v1", "pilot-v2"]  # v1 kept

    back = hub_cli("rollback", "--hub", hub.url, "--token-file", str(admin), "--channel", "production")
    assert back.returncode == 0 and "pilot v1" in back.stdout, back.stderr
    assert pull_once(fleet, keys, tmp_path) == PullResult("switched", "pilot-v1")
    assert os.readlink(models / "current") == "versions/pilot-v1"
    with hub.client(hub.token("car-reader")) as c:  # any vehicle reads the channel and its manifest
        current = c.get("/v1/channels/production").json()
    assert current["version"] == 1 and current["manifest"]["files"]["policy.onnx"]
    history = hub.admin_get("/v1/channels/production/history")
    assert [(h["action"], h["version"]) for h in history] == [("publish", 1), ("publish", 2), ("rollback", 1)]
    diag = [json.loads(line) for line in (tmp_path / "state" / "diagnostics.jsonl").read_text().splitlines()]
    assert diag[-1]["status"][2]["values"]["current"] == "pilot-v1"


def test_range_download_resumes_a_partial_file(fleet, keys, tmp_path: Path) -> None:
    hub, _admin, _token, _ = fleet
    b1 = make_bundle(tmp_path / "b1", keys["priv"], 1)
    post_bundle(hub, b1)
    rel = hub.admin_get("/v1/channels/production")
    whole = (b1 / "policy.onnx").read_bytes()
    with hub.client(hub.admin) as c:
        r = c.get(f"/v1/bundles/{rel['bundle_id']}/files/policy.onnx", headers={"Range": "bytes=1000-1999"})
    assert r.status_code == 206 and r.content == whole[1000:2000]
    staged = tmp_path / "models" / "staging" / rel["bundle_id"]
    staged.mkdir(parents=True)
    (staged / "policy.onnx").write_bytes(whole[:123_456])  # a download cut short by a crash
    assert pull_once(fleet, keys, tmp_path) == PullResult("installed", "pilot-v1")
    assert (tmp_path / "models" / "current" / "policy.onnx").read_bytes() == whole


@pytest.mark.parametrize("fault", ["changed_byte", "unsigned", "other_key"])
def test_hub_refuses_bad_bundles(fleet, keys, tmp_path: Path, fault: str) -> None:
    hub, admin, *_ = fleet
    key = keys["other"] if fault == "other_key" else keys["priv"]
    bundle = make_bundle(tmp_path / "bad", key, 1)
    if fault == "changed_byte":
        data = bytearray((bundle / "policy.onnx").read_bytes())
        data[len(data) // 2] ^= 0x01
        (bundle / "policy.onnx").write_bytes(bytes(data))
    elif fault == "unsigned":
        (bundle / "manifest.sig").unlink()
    r = publish(hub, admin, bundle)
    assert r.returncode == 2
    assert (
        "422" in r.stderr
        and {"changed_byte": "sha256", "unsigned": "unsigned", "other_key": "signature"}[fault] in r.stderr
    )
    assert len(r.stderr.strip().splitlines()) == 1
    with hub.client(hub.admin) as c:
        assert c.get("/v1/channels/production").status_code == 404  # nothing was released
    assert list((hub.root / "bundles").iterdir()) == []


def test_vehicle_refuses_a_bundle_tampered_on_the_hub(fleet, keys, tmp_path: Path) -> None:
    hub, _admin, *_ = fleet
    post_bundle(hub, make_bundle(tmp_path / "b1", keys["priv"], 1))
    stored = next((hub.root / "bundles").iterdir()) / "policy.onnx"
    data = bytearray(stored.read_bytes())
    data[10] ^= 0xFF  # same size, one byte changed after the hub verified it
    stored.write_bytes(bytes(data))
    result = pull_once(fleet, keys, tmp_path)
    assert result.action == "refused" and result.label == "pilot-v1" and "sha256" in result.reason
    assert not (tmp_path / "models" / "current").exists()
    assert not (tmp_path / "models" / "versions" / "pilot-v1").exists()
    assert list((tmp_path / "models" / "staging").iterdir()) == []


def test_vehicle_refuses_observation_mismatch_and_failed_golden_replay(fleet, keys, tmp_path: Path) -> None:
    hub, _admin, *_ = fleet
    models = tmp_path / "models"
    post_bundle(hub, make_bundle(tmp_path / "b1", keys["priv"], 1))
    assert pull_once(fleet, keys, tmp_path).action == "installed"
    obs = replace(ObservationSpec.from_config(config_dir() / "dataset.yaml"), image_width=999)
    post_bundle(hub, make_bundle(tmp_path / "b2", keys["priv"], 2, observation=obs))
    result = pull_once(fleet, keys, tmp_path)
    assert result.action == "refused" and "observation spec incompatible" in result.reason
    assert os.readlink(models / "current") == "versions/pilot-v1"
    assert pull_once(fleet, keys, tmp_path).action == "refused"  # remembered: not downloaded again
    # Golden replay with the onboard team's real tiny ONNX policy: one that emits NaN is refused (the
    # supervisor falls back), a sound one is installed.
    fx = _vehicle_fixtures()
    golden = fx.write_drive_bag(tmp_path / "golden")
    post_bundle(hub, fx.make_bundle(tmp_path / "b3", keys["priv"], name="pilot", version=3, nan=True))
    result = pull_once(fleet, keys, tmp_path, golden)
    assert result.action == "refused" and "golden replay" in result.reason, result
    assert os.readlink(models / "current") == "versions/pilot-v1"
    post_bundle(hub, fx.make_bundle(tmp_path / "b4", keys["priv"], name="pilot", version=4))
    assert pull_once(fleet, keys, tmp_path, golden) == PullResult("installed", "pilot-v4")
    assert os.readlink(models / "current") == "versions/pilot-v4"
    assert list((models / "staging").iterdir()) == []


def _vehicle_fixtures() -> ModuleType:
    """The onboard tests' helpers (tiny real ONNX policy, drive bags), loaded by path like other areas do."""
    name = "roadloop_vehicle_test_fixtures"
    if name not in sys.modules:
        path = Path(__file__).resolve().parents[1] / "roadloop_vehicle" / "fixtures.py"
        spec = importlib.util.spec_from_file_location(name, path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def test_once_fails_loudly_on_an_unknown_channel(fleet, keys, tmp_path: Path, run_bridge) -> None:
    done = pull(fleet, keys, tmp_path, run_bridge, "--channel", "nightly")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "channel 'nightly' unknown" in done.stderr
