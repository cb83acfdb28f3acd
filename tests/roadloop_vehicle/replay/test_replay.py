"""Replay: byte-identical output twice, stats, the CLI, bad input, NaN fallback in the same frame."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path
from types import ModuleType

import pytest

from roadloop_core.bag import open_bag
from roadloop_core.cli import main
from roadloop_core.config import config_dir
from roadloop_vehicle.errors import ReplayError
from roadloop_vehicle.params import load_vehicle_params
from roadloop_vehicle.replay import replay_bag

VEHICLE = load_vehicle_params(config_dir() / "vehicle.yaml")  # what the car runs on


def run_cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


def digest(bag: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(bag.iterdir())}


def test_replay_twice_is_byte_identical(
    drive_bag: Path, bundle: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    a = replay_bag(drive_bag, tmp_path / "a" / "out", bundle, params=VEHICLE, public_key=keypair[1])
    b = replay_bag(drive_bag, tmp_path / "b" / "out", bundle, params=VEHICLE, public_key=keypair[1])
    assert digest(tmp_path / "a" / "out") == digest(tmp_path / "b" / "out")
    assert a.deterministic == b.deterministic
    d = a.deterministic
    assert d["frames"] == 30 and d["fallbacks"] == 0 and d["states"] == {"active": 30}
    assert d["models"] == ["tiny-v1"]
    m = a.measured
    assert set(m["latency_ms"]) >= {"sync", "policy", "inference", "control", "safety", "frame"}
    assert m["realtime_factor"] > 0


def test_output_bag_contents(drive_bag: Path, bundle: Path, keypair: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "out"
    replay_bag(drive_bag, out, bundle, params=VEHICLE, public_key=keypair[1])
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")], "no staging left behind"
    with open_bag(out) as bag:
        counts = {t.name: t.message_count for t in bag.info.topics}
        assert counts["/planning/trajectory"] == 30 and counts["/control/command"] == 30
        assert counts["/diagnostics"] >= 3  # first frame, then once per simulated second
        cmds = [bag.decode(r) for r in bag.messages(["/control/command"])]
        diags = [bag.decode(r) for r in bag.messages(["/diagnostics"])]
        paths = [bag.decode(r) for r in bag.messages(["/planning/trajectory"])]
    # straight road, route along x: steering ~0, speed target = 0.5 * 5 m/s + 5 (tiny policy)
    assert all(abs(c.drive.steering_angle) < 1e-3 for c in cmds)
    assert cmds[-1].drive.speed == pytest.approx(7.5, abs=1e-3)
    assert len(paths[0].poses) == 8 and paths[0].poses[-1].pose.position.x == pytest.approx(10.0, abs=0.1)
    # as on the car: the drive stage reports the model, the safety stage the supervisor, each its own array
    assert {tuple(s.name for s in d.status) for d in diags} == {("roadloop/safety",), ("roadloop/model",)}
    safety = next(d.status[0] for d in diags if d.status[0].name == "roadloop/safety")
    models = [d.status[0] for d in diags if d.status[0].name == "roadloop/model"]
    assert any(kv.value.startswith("loaded tiny-v1") for kv in models[0].values)  # loaded before the first frame
    activated = next(m for m in models if any(kv.value.startswith("activated tiny-v1") for kv in m.values))
    assert safety.level == 0 and activated.message == "tiny-v1" and models[-1].message == "tiny-v1"


def test_stale_camera_in_the_bag_triggers_fallback_and_recovery(
    fx: ModuleType, bundle: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    bag = fx.write_drive_bag(tmp_path / "gap", seconds=5.0, camera_gap=(1.0, 2.0))
    res = replay_bag(bag, tmp_path / "out", bundle, params=VEHICLE, public_key=keypair[1])
    d = res.deterministic
    # no camera -> no frames: the watchdog (safety_node's timer) sees camera and command go stale
    assert d["fallbacks"] == 1
    assert set(d["faults"]) == {"stale:camera", "stale:command_raw", "no_command"}
    assert 5 <= d["watchdog_ticks"] <= 9  # 10 Hz from 0.3 s after the last command until the camera returns
    assert d["frames"] == 40 and d["states"] == {"active": 31, "recovering": 9}  # recovery_frames = 10
    with open_bag(tmp_path / "out") as b:
        levels = [max(s.level for s in b.decode(r).status) for r in b.messages(["/diagnostics"])]
    assert 2 in levels  # the fallback is on /diagnostics with level ERROR


def test_nan_model_falls_back_within_the_same_frame(
    fx: ModuleType, drive_bag: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    # NaN only on real inputs (not on warm-up): image mean * NaN gain is NaN for any image -> refused at load
    bad = fx.make_bundle(tmp_path / "nan-v1", keypair[0], nan=True)
    with pytest.raises(ReplayError, match="NaN"):
        replay_bag(drive_bag, tmp_path / "out", bad, params=VEHICLE, public_key=keypair[1])


def test_nan_in_service_commands_a_stop_in_that_frame(
    drive_bag: Path, bundle: Path, keypair: tuple[Path, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from roadloop_vehicle.runtime import policy_runtime as policy

    real_step = policy.PolicyRuntime.step
    calls = {"n": 0}

    def flaky(self: policy.PolicyRuntime, x: object) -> object:
        out = real_step(self, x)  # type: ignore[arg-type]
        calls["n"] += 1
        if calls["n"] == 10 + 4:  # after warm-up (3 + 1 check), the 10th frame
            out.waypoints[0, 0] = math.nan
        return out

    monkeypatch.setattr(policy.PolicyRuntime, "step", flaky)
    res = replay_bag(drive_bag, tmp_path / "out", bundle, params=VEHICLE, public_key=keypair[1])
    assert res.deterministic["faults"] == {"nan_output": 1}
    with open_bag(tmp_path / "out") as b:
        cmds = [b.decode(r).drive for r in b.messages(["/control/command"])]
    # the stop starts in the NaN frame itself: the speed command drops from there on
    speeds = [c.speed for c in cmds[8:14]]
    assert speeds[1] < speeds[0] and speeds == sorted(speeds, reverse=True)
    assert all(math.isfinite(c.steering_angle) for c in cmds)


def test_bag_without_camera_is_a_clear_error(
    fx: ModuleType, bundle: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    bag = fx.write_drive_bag(tmp_path / "nocam", seconds=1.0, skip_roles=("camera",))
    with pytest.raises(ReplayError, match=r"no /sensors/camera/front/image \(camera\) topic"):
        replay_bag(bag, tmp_path / "out", bundle, params=VEHICLE, public_key=keypair[1])
    assert not (tmp_path / "out").exists()


def test_cli_replay_with_stats(
    drive_bag: Path, bundle: Path, keypair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["replay", str(drive_bag), "--bundle", str(bundle), "--public-key", str(keypair[1])]
    plot = tmp_path / "r1.png"
    assert (
        run_cli(
            [*args, "--out", str(tmp_path / "r1" / "out"), "--stats", str(tmp_path / "s1.json"), "--plot", str(plot)]
        )
        == 0
    )
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert run_cli([*args, "--out", str(tmp_path / "r2" / "out"), "--stats", str(tmp_path / "s2.json")]) == 0
    assert "30 frames" in capsys.readouterr().out
    s1, s2 = (json.loads((tmp_path / f"s{i}.json").read_text()) for i in (1, 2))
    assert {k: v for k, v in s1.items() if k != "measured"} == {k: v for k, v in s2.items() if k != "measured"}
    assert digest(tmp_path / "r1" / "out") == digest(tmp_path / "r2" / "out")
    assert s1["measured"]["latency_ms"]["frame"]["p99"] >= s1["measured"]["latency_ms"]["frame"]["p50"] > 0


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("nocam", "no /sensors/camera/front/image (camera) topic"),
        ("tampered", "sha256"),
        ("exists", "already exists"),
        ("missing_bag", "no such file"),
    ],
)
def test_cli_bad_input_is_one_line_exit_2(
    case: str,
    message: str,
    fx: ModuleType,
    drive_bag: Path,
    bundle: Path,
    keypair: tuple[Path, Path],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import shutil

    bag, b, out = drive_bag, bundle, tmp_path / "out"
    if case == "nocam":
        bag = fx.write_drive_bag(tmp_path / "nocam", seconds=1.0, skip_roles=("camera",))
    elif case == "tampered":
        b = tmp_path / "tampered"
        shutil.copytree(bundle, b)
        (b / "policy.onnx").write_bytes((b / "policy.onnx").read_bytes() + b"\0")
    elif case == "exists":
        out.mkdir()
    elif case == "missing_bag":
        bag = tmp_path / "nope"
    assert run_cli(["replay", str(bag), "--bundle", str(b), "--public-key", str(keypair[1]), "--out", str(out)]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1, err


def test_realtime_pacing_changes_nothing_but_the_pace(
    fx: ModuleType, bundle: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    bag = fx.write_drive_bag(tmp_path / "short", seconds=1.0)
    fast = replay_bag(bag, tmp_path / "f" / "out", bundle, params=VEHICLE, public_key=keypair[1])
    paced = replay_bag(bag, tmp_path / "p" / "out", bundle, params=VEHICLE, public_key=keypair[1], realtime=True)
    assert digest(tmp_path / "f" / "out") == digest(tmp_path / "p" / "out")
    assert fast.deterministic == paced.deterministic


def test_cli_replay_writes_the_output_bag_for_the_chosen_distro(
    drive_bag: Path, bundle: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    args = ["replay", str(drive_bag), "--bundle", str(bundle), "--public-key", str(keypair[1])]
    assert run_cli([*args, "--out", str(tmp_path / "h" / "out"), "--distro", "humble"]) == 0
    assert run_cli([*args, "--out", str(tmp_path / "j" / "out")]) == 0  # default: the registry's typestore (jazzy)
    with open_bag(tmp_path / "h" / "out") as humble, open_bag(tmp_path / "j" / "out") as jazzy:
        assert (humble.info.version, humble.info.ros_distro) == (5, "humble")
        assert (jazzy.info.version, jazzy.info.ros_distro) == (9, "jazzy")
        assert [bytes(m.data) for m in humble.messages()] == [bytes(m.data) for m in jazzy.messages()]
    assert run_cli([*args, "--out", str(tmp_path / "x" / "out"), "--distro", "rolling"]) == 2
    assert not (tmp_path / "x").exists() or not any((tmp_path / "x").iterdir())  # nothing left behind


def test_watchdog_stops_are_counted_as_fallback(
    bundle: Path, keypair: tuple[Path, Path], tmp_path: Path, fx: ModuleType
) -> None:
    """Issue 13: a run whose camera died for its last 13 s (the watchdog held the car in a controlled stop,
    no policy frame at all) reported `fallback_frames: 0`. The stats count the watchdog's decisions too."""
    bag = fx.write_drive_bag(tmp_path / "dies", seconds=16.0, camera_gap=(3.0, 17.0))
    stats = replay_bag(bag, tmp_path / "a" / "out", bundle, params=VEHICLE, public_key=keypair[1]).deterministic
    assert stats["fallback_frames"] == 0  # every policy frame (the first 3 s) was ACTIVE ...
    assert stats["watchdog_fallback_ticks"] > 0 and stats["watchdog_states"].get("fallback", 0) > 0
    assert stats["fallback_decisions"] == stats["watchdog_fallback_ticks"]  # ... the stop was all the watchdog's
    assert 12.0 <= stats["fallback_s"] <= 13.5  # the car stood still for the rest of the bag
    again = replay_bag(bag, tmp_path / "b" / "out", bundle, params=VEHICLE, public_key=keypair[1]).deterministic
    assert again == stats and digest(tmp_path / "b" / "out") == digest(tmp_path / "a" / "out")


def test_a_clean_run_has_no_fallback_decisions(
    drive_bag: Path, bundle: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    stats = replay_bag(drive_bag, tmp_path / "out", bundle, params=VEHICLE, public_key=keypair[1]).deterministic
    assert stats["fallback_decisions"] == 0 and stats["fallback_s"] == 0.0
    assert stats["watchdog_fallback_ticks"] == 0


def test_watchdog_stops_before_the_first_frame_are_startup_not_fallback(
    bundle: Path, keypair: tuple[Path, Path], tmp_path: Path, fx: ModuleType
) -> None:
    """A recording whose first camera frame comes after the other sensors (a simulator's first frame waits for
    the route): the watchdog stops the car it has not driven yet. That is how the safety node starts on the car,
    not a fallback, so a golden replay of such a bag must not refuse a sound model for it."""
    bag = fx.write_drive_bag(tmp_path / "late", seconds=4.0, camera_gap=(0.0, 0.5))
    stats = replay_bag(bag, tmp_path / "out", bundle, params=VEHICLE, public_key=keypair[1]).deterministic
    assert stats["startup_ticks"] > 0 and stats["watchdog_fallback_ticks"] == stats["startup_ticks"]
    assert stats["fallback_decisions"] == 0 and stats["fallback_s"] == 0.0 and stats["frames"] > 0
