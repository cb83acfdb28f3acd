"""The registry end to end: publish (hub verifies), pull (vehicle verifies again), switch, rollback, refusals."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import pytest

from roadloop_core.bundle import generate_keypair, read_manifest, write_bundle
from roadloop_core.config import config_dir
from roadloop_core.contract.wire import TarStream
from roadloop_core.features import ObservationSpec
from roadloop_vehicle.bridge import Bridge, BridgeConfig, PullResult
from roadloop_vehicle.params import load_vehicle_params
from tests.support.vehicle_fixtures import vehicle_fixtures


@pytest.fixture
def keys(tmp_path: Path) -> dict[str, Path]:
    priv, pub = generate_keypair(tmp_path / "keys")
    other, _ = generate_keypair(tmp_path / "other")
    return {"priv": priv, "pub": pub, "other": other}


def make_bundle(
    out: Path, key: Path, version: int, observation: ObservationSpec | None = None, weights: int = 0
) -> Path:
    """A bundle the drive node loads: the onboard team's tiny real ONNX policy, signed with `key`; `weights`:
    that many random bytes in a second file (`weights.bin`, a large file for the download tests)."""
    fx = vehicle_fixtures()
    if not weights:
        return fx.make_bundle(out, key, name="pilot", version=version, observation=observation)  # type: ignore[no-any-return]
    src = fx.make_bundle(out.parent / f".{out.name}.src", key, name="pilot", version=version, observation=observation)
    blob = out.parent / f".{out.name}.bin"
    blob.write_bytes(os.urandom(weights))
    files = {"policy.onnx": src / "policy.onnx", "weights.bin": blob}
    write_bundle(out, files=files, manifest=read_manifest(src), signing_key=key)
    return out


def make_unloadable_bundle(out: Path, key: Path, version: int) -> Path:
    """Signed by the trusted key with every hash right, but not a model onnxruntime can load."""
    good = make_bundle(out.parent / f".{out.name}.src", key, version)
    junk = out.parent / f".{out.name}.onnx"
    junk.write_bytes(os.urandom(300_000))
    write_bundle(out, files={"policy.onnx": junk}, manifest=read_manifest(good), signing_key=key)
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


def pull_once(fleet, keys, tmp_path: Path, golden: Path | None = None, **cfg_changes: object) -> PullResult:
    """One bridge pass in-process against the hub process (the CLI path is covered by `pull`)."""
    hub, _, token, watch = fleet
    cfg = replace(
        BridgeConfig(),
        settle_s=0.0,
        models_dir=str(tmp_path / "models"),
        public_key=str(keys["pub"]),
        golden_bag=str(golden) if golden else "",
        **cfg_changes,  # type: ignore[arg-type]
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
    b1 = make_bundle(tmp_path / "b1", keys["priv"], 1, weights=300_000)
    post_bundle(hub, b1)
    rel = hub.admin_get("/v1/channels/production")
    whole = (b1 / "weights.bin").read_bytes()
    with hub.client(hub.admin) as c:
        r = c.get(f"/v1/bundles/{rel['bundle_id']}/files/weights.bin", headers={"Range": "bytes=1000-1999"})
    assert r.status_code == 206 and r.content == whole[1000:2000]
    staged = tmp_path / "models" / "staging" / rel["bundle_id"]
    staged.mkdir(parents=True)
    (staged / "weights.bin").write_bytes(whole[:123_456])  # a download cut short by a crash
    assert pull_once(fleet, keys, tmp_path) == PullResult("installed", "pilot-v1")
    assert (tmp_path / "models" / "current" / "weights.bin").read_bytes() == whole


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


def _corrupt(path: Path) -> bytes:
    """One byte changed, same size (what a bad disk or a proxy could hand out); returns the good bytes."""
    good = path.read_bytes()
    data = bytearray(good)
    data[10] ^= 0xFF
    path.write_bytes(bytes(data))
    return good


FAST_RETRY = {"backoff_base_s": 0.01, "backoff_max_s": 0.02}


def test_one_corrupt_download_is_retried_then_installed(fleet, keys, tmp_path: Path) -> None:
    """Issue 13: a refusal caused by one corrupt download was remembered forever by bundle id."""
    hub, _admin, *_ = fleet
    post_bundle(hub, make_bundle(tmp_path / "b1", keys["priv"], 1))
    stored = next((hub.root / "bundles").iterdir()) / "policy.onnx"
    good = _corrupt(stored)  # the vehicle downloads bytes that differ from the release
    result = pull_once(fleet, keys, tmp_path, **FAST_RETRY)
    assert result.action == "retry" and result.label == "pilot-v1" and "differ from the release" in result.reason
    assert not (tmp_path / "models" / "current").exists()
    stored.write_bytes(good)
    time.sleep(0.05)  # past the (tiny) backoff
    assert pull_once(fleet, keys, tmp_path, **FAST_RETRY) == PullResult("installed", "pilot-v1")
    assert (tmp_path / "models" / "current" / "policy.onnx").read_bytes() == good
    assert json.loads((tmp_path / "state" / "models.json").read_text()) == {"refused": {}, "retry": {}}


def test_corrupt_downloads_are_bounded(fleet, keys, tmp_path: Path) -> None:
    hub, _admin, *_ = fleet
    post_bundle(hub, make_bundle(tmp_path / "b1", keys["priv"], 1))
    _corrupt(next((hub.root / "bundles").iterdir()) / "policy.onnx")
    first = pull_once(fleet, keys, tmp_path, max_attempts=2, **FAST_RETRY)
    assert first.action == "retry" and "download 1 of 2" in first.reason
    time.sleep(0.05)
    second = pull_once(fleet, keys, tmp_path, max_attempts=2, **FAST_RETRY)
    assert second.action == "refused" and "2 downloads were corrupt" in second.reason
    assert pull_once(fleet, keys, tmp_path, max_attempts=2, **FAST_RETRY).action == "refused"  # now for good
    assert not (tmp_path / "models" / "current").exists()
    assert list((tmp_path / "models" / "staging").iterdir()) == []


def test_a_signed_but_unloadable_bundle_never_becomes_current(fleet, keys, tmp_path: Path, run_bridge) -> None:
    """Issue 13: with the default config (no golden bag) a bundle signed by the trusted key but unloadable became
    `current`, so every drive node that restarted had no model. The bridge now loads it as the drive node does."""
    hub, _admin, *_ = fleet
    models = tmp_path / "models"
    post_bundle(hub, make_bundle(tmp_path / "b1", keys["priv"], 1))
    assert pull_once(fleet, keys, tmp_path) == PullResult("installed", "pilot-v1")
    post_bundle(hub, make_unloadable_bundle(tmp_path / "b2", keys["priv"], 2))
    done = pull(fleet, keys, tmp_path, run_bridge)
    assert done.returncode == 2, done.stdout  # `--once` says the update was refused
    line = done.stderr.strip()
    assert "\n" not in line and "model pilot-v2 refused" in line and "onnxruntime cannot load the model" in line
    assert os.readlink(models / "current") == "versions/pilot-v1"
    assert not (models / "versions" / "pilot-v2").exists()
    again = pull(fleet, keys, tmp_path, run_bridge)  # a content refusal is remembered: not downloaded again
    assert again.returncode == 2 and "model pilot-v2 refused" in again.stderr


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
    # The onboard team's real tiny ONNX policy: one that emits NaN is refused by the drive node's own warm-up
    # check (before any replay); one that is finite on the neutral warm-up input but wild on real camera
    # frames is refused by the golden replay (the supervisor falls back); a sound one is installed.
    fx = vehicle_fixtures()
    golden = fx.write_drive_bag(tmp_path / "golden")
    post_bundle(hub, fx.make_bundle(tmp_path / "b3", keys["priv"], name="pilot", version=3, nan=True))
    result = pull_once(fleet, keys, tmp_path, golden)
    assert result.action == "refused" and "NaN/inf on the warm-up input" in result.reason, result
    spec = ObservationSpec.from_config(config_dir() / "dataset.yaml")
    wild = _with_image_gain(fx.tiny_policy(tmp_path / "wild.onnx", spec.image_height, spec.image_width), 1e6)
    post_bundle(hub, fx.make_bundle(tmp_path / "b5", keys["priv"], name="pilot", version=5, onnx_path=wild))
    result = pull_once(fleet, keys, tmp_path, golden)
    assert result.action == "refused" and "golden replay" in result.reason, result
    assert os.readlink(models / "current") == "versions/pilot-v1"
    post_bundle(hub, fx.make_bundle(tmp_path / "b6", keys["priv"], name="pilot", version=6))
    assert pull_once(fleet, keys, tmp_path, golden) == PullResult("installed", "pilot-v6")
    assert os.readlink(models / "current") == "versions/pilot-v6"
    assert list((models / "staging").iterdir()) == []


def _with_image_gain(path: Path, gain: float) -> Path:
    """The tiny policy with its image term scaled: finite everywhere, but waypoints far off on a real image."""
    import numpy as np
    import onnx
    from onnx import numpy_helper

    model = onnx.load(str(path))
    for init in model.graph.initializer:
        if init.name == "img_gain":
            init.CopyFrom(numpy_helper.from_array(np.array(gain, np.float32), "img_gain"))
    onnx.save(model, str(path))
    return path


def test_once_fails_loudly_on_an_unknown_channel(fleet, keys, tmp_path: Path, run_bridge) -> None:
    done = pull(fleet, keys, tmp_path, run_bridge, "--channel", "nightly")
    assert done.returncode == 2
    assert done.stderr.strip().splitlines() == [done.stderr.strip()] and "channel 'nightly' unknown" in done.stderr
