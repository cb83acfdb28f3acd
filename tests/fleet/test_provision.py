"""`roadloop vehicle provision` against a real hub process on loopback: a fresh car's config folder, the fleet's
key, its token and the first production model pulled, verified and loaded; refusals are one line, exit 2."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from roadloop_core.bundle import generate_keypair
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.contract.wire import TarStream
from roadloop_core.registry import load_registry
from roadloop_vehicle.model_manager import ModelManager
from roadloop_vehicle.params import load_vehicle_params
from roadloop_vehicle.provision import CAR_FILES
from roadloop_vehicle.safety import SafetyCore
from roadloop_vehicle.safety.core import safety_status
from roadloop_vehicle.safety.supervisor import observed_roles
from tests.support.vehicle_fixtures import vehicle_fixtures

ROADLOOP = str(Path(sys.executable).with_name("roadloop"))


@pytest.fixture
def fleet(hub_proc, tmp_path: Path):
    priv, pub = generate_keypair(tmp_path / "fleet-keys")
    hub = hub_proc(public_key=pub)
    return hub, priv, pub


def publish(hub, bundle: Path, channel: str = "production") -> None:
    stream = TarStream(bundle)
    with hub.client(hub.admin) as c:
        r = c.post(f"/v1/channels/{channel}/bundles", content=stream.read(0, stream.size))
    assert r.status_code == 201, r.text


def provision(hub, pub: Path, out: Path, token: str, *extra: str) -> subprocess.CompletedProcess[str]:
    cmd = [ROADLOOP, "vehicle", "provision", "--hub", hub.url, "--token", token, "--public-key", str(pub)]
    cmd += ["--out", str(out), "--vehicle", "car7", *extra]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300)


def one_line_exit_2(res: subprocess.CompletedProcess[str], needle: str) -> None:
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in res.stderr and needle in lines[0], res.stderr


def test_a_fresh_car_gets_config_key_token_and_the_first_model(fleet, tmp_path: Path) -> None:
    hub, priv, pub = fleet
    publish(hub, vehicle_fixtures().make_bundle(tmp_path / "b1", priv, name="pilot", version=1))
    car = tmp_path / "car"
    res = provision(hub, pub, car, hub.token("car7"), "--json")
    assert res.returncode == 0, res.stderr
    record = json.loads(res.stdout)
    assert record["model"] == "pilot-v1" and record["vehicle"] == "car7" and record["channel"] == "production"
    for name in CAR_FILES:
        assert (car / name).is_file(), name
    assert stat.S_IMODE((car / "hub.token").stat().st_mode) == 0o600
    assert os.readlink(car / "models" / "current") == "versions/pilot-v1"
    assert (car / "keys" / "signing.pub").read_bytes().strip() == pub.read_bytes().strip()
    # what the drive node does at start, from the provisioned file alone (absolute paths: passable from anywhere)
    params = load_vehicle_params(car / "vehicle.yaml")
    assert Path(params.drive.public_key).is_absolute() and Path(params.drive.model_manager.models_dir).is_absolute()
    obs = ObservationSpec.from_config(params.path(params.drive.observation_config))
    manager = ModelManager(params.drive.model_manager, params.drive.runtime, obs, params.path(params.drive.public_key))
    assert manager.poll_current() and manager.begin_frame() is not None
    assert manager.active is not None and manager.active.label == "pilot-v1"
    # the bridge runs on the provisioned bridge.yaml with the same models folder: nothing new to pull
    bridge = subprocess.run(
        [ROADLOOP, "bridge", "run", "--once", "--quiet", "--config", str(car / "bridge.yaml"), "--hub", hub.url,
         "--token-file", str(car / "hub.token"), "--state", str(car / "bridge-state"), "--watch", str(car)],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert bridge.returncode == 0, bridge.stderr
    assert os.readlink(car / "models" / "current") == "versions/pilot-v1"
    # rerunning is safe: same files, model unchanged
    again = provision(hub, pub, car, hub.token("car7"))
    assert again.returncode == 0 and "pilot-v1 (unchanged" in again.stdout, again.stdout + again.stderr


def test_without_a_release_the_car_is_ready_and_safety_holds_a_controlled_stop(fleet, tmp_path: Path) -> None:
    hub, _, pub = fleet
    car = tmp_path / "car"
    res = provision(hub, pub, car, hub.token("car7"))
    assert res.returncode == 0, res.stderr
    assert "no model yet" in res.stdout and "controlled stop" in res.stdout
    assert not (car / "models" / "current").exists()
    params = load_vehicle_params(car / "vehicle.yaml")
    strict = provision(hub, pub, tmp_path / "car2", hub.token("car8"), "--require-model")
    one_line_exit_2(strict, "--require-model")
    # The safety node's core with no command ever arriving (no model: the drive node publishes nothing): after
    # command_raw's staleness it decides anyway, a controlled stop, and its /diagnostics status says why.
    s = params.safety
    registry = load_registry(params.path(s.topics_config))
    observed = observed_roles(ObservationSpec.from_config(params.path(s.observation_config)))
    core = SafetyCore(s.safety, s.vehicle_limits, registry, s.diagnostics_period_s, observed_roles=observed)
    now, decided = 1_000_000_000, None
    core.start(now)  # what safety_node does when it starts
    for _ in range(100):
        decided = decided or core.tick(now, {}, model_available=False)
        now += 50_000_000
    assert decided is not None, "the watchdog never decided without a first command"
    assert decided.command.speed == 0.0 and decided.state.value != "active"  # held in INIT: never drove
    assert decided.reason.startswith("controlled stop: ") and "stale:command_raw" in decided.reason
    assert "no_command" in decided.reason and "model_unavailable" in decided.reason
    level, name, message, _ = safety_status(decided)  # what /diagnostics carries
    assert name == "roadloop/safety" and level > 0 and message == decided.reason


def test_a_bundle_not_signed_by_the_fleet_key_is_refused(fleet, tmp_path: Path) -> None:
    hub, priv, pub = fleet
    publish(hub, vehicle_fixtures().make_bundle(tmp_path / "b1", priv, name="pilot", version=1))
    _, other_pub = generate_keypair(tmp_path / "not-the-fleet")
    res = provision(hub, other_pub, tmp_path / "car", hub.token("car7"))
    one_line_exit_2(res, "first model pilot-v1 refused")
    assert not (tmp_path / "car" / "models" / "current").exists()
    # the operator reruns with the fleet's key: the earlier refusal does not stick
    fixed = provision(hub, pub, tmp_path / "car", hub.token("car7"))
    assert fixed.returncode == 0 and "model pilot-v1 (installed" in fixed.stdout, fixed.stdout + fixed.stderr


@pytest.mark.parametrize(
    ("case", "needle"),
    [
        ("bad-token", "401"),
        ("bad-key", "key.pem"),
        ("no-hub", "127.0.0.1:9"),
    ],
)
def test_bad_input_is_one_line_exit_2(fleet, tmp_path: Path, case: str, needle: str) -> None:
    hub, _, pub = fleet
    token = hub.token("car7")
    if case == "bad-token":
        token = "not-a-token"
    if case == "bad-key":
        pub = tmp_path / "key.pem"
        pub.write_text("not a key\n")
    if case == "no-hub":
        hub = type("Down", (), {"url": "http://127.0.0.1:9"})()
    one_line_exit_2(provision(hub, pub, tmp_path / "car", token), needle)
