"""What safety watches in a replay: the model's inputs (its observation spec) plus the config's extra roles,
never a topic the model does not read; and frames that never leave INIT are a reported fault."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from types import ModuleType

import pytest
import yaml

from roadloop_core.cli import main
from roadloop_core.config import config_dir
from roadloop_core.contract.observation import ObservationSpec
from roadloop_vehicle.params import VehicleParams, load_vehicle_params
from roadloop_vehicle.replay import replay_bag
from roadloop_vehicle.safety import observed_roles

VEHICLE = load_vehicle_params(config_dir() / "vehicle.yaml")


@pytest.mark.parametrize(
    ("spec", "roles"),
    [
        (ObservationSpec(), ["camera", "imu", "odometry"]),  # a latched route is the synchronizer's to judge
        (ObservationSpec(camera=None), ["imu", "odometry"]),
        (ObservationSpec(camera=None, imu=None, route=None, route_source="none"), ["odometry"]),
        (ObservationSpec(camera=None, route="route", route_source="hindsight"), ["imu", "odometry"]),
    ],
)
def test_the_model_inputs_are_what_is_watched(spec: ObservationSpec, roles: list[str]) -> None:
    assert observed_roles(spec) == roles


def state_only_vehicle(tmp_path: Path, extra: list[str]) -> tuple[VehicleParams, ObservationSpec]:
    """config/vehicle.yaml with a state-only observation spec (config/dataset.yaml, camera: null)."""
    doc = yaml.safe_load((config_dir() / "dataset.yaml").read_text())
    doc["observation"]["camera"] = None
    obs_path = tmp_path / "dataset.yaml"
    obs_path.write_text(yaml.safe_dump(doc))
    drive = dataclasses.replace(VEHICLE.drive, observation_config=str(obs_path))
    safety = dataclasses.replace(
        VEHICLE.safety,
        observation_config=str(obs_path),
        safety=dataclasses.replace(VEHICLE.safety.safety, extra_monitored_roles=extra),
    )
    return VehicleParams(drive, safety, VEHICLE.source), ObservationSpec.from_config(obs_path)


def test_a_state_only_model_on_a_log_without_camera_drives(
    fx: ModuleType, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    """The replay of issue 12: a state-only bundle on a bag without video. The camera the model does not read
    is not watched, so the supervisor leaves INIT on the first healthy frame."""
    params, spec = state_only_vehicle(tmp_path, ["command_raw"])
    bundle = fx.make_bundle(tmp_path / "state-v1", keypair[0], observation=spec)
    bag = fx.write_drive_bag(tmp_path / "nocam", seconds=3.0, skip_roles=("camera",))
    d = replay_bag(bag, tmp_path / "out", bundle, params=params, public_key=keypair[1]).deterministic
    assert d["monitored_roles"] == ["imu", "odometry", "command_raw"]
    assert d["frames"] > 20 and d["init_frames"] == 0 and d["problems"] == []
    assert d["states"] == {"active": d["frames"]} and "stale:camera" not in d["faults"]


def test_frames_that_never_leave_init_are_a_fault_not_zero_fallbacks(
    fx: ModuleType, keypair: tuple[Path, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """A role the vehicle config adds is watched too: one the bag lacks holds the car in INIT, and the replay
    says so (stats `problems`, a FAULT line, exit code 1) instead of reporting '0 fallback(s)' and nothing else."""
    params, spec = state_only_vehicle(tmp_path, ["command_raw", "camera"])
    bundle = fx.make_bundle(tmp_path / "state-v1", keypair[0], observation=spec)
    bag = fx.write_drive_bag(tmp_path / "nocam", seconds=3.0, skip_roles=("camera",))
    d = replay_bag(bag, tmp_path / "out", bundle, params=params, public_key=keypair[1]).deterministic
    assert d["fallbacks"] == 0 and d["init_frames"] == d["frames"] > 0
    assert d["problems"] == [
        f"{d['frames']} of {d['frames']} frames never left INIT (stale:camera {d['frames']})",
        "the policy never drove: no ACTIVE frame",
    ]
    # the CLI: the same through the params file, exit 1 and the fault on stderr
    vehicle = yaml.safe_load((config_dir() / "vehicle.yaml").read_text())
    vehicle["/**"]["ros__parameters"]["observation_config"] = str(tmp_path / "dataset.yaml")
    vehicle["/**"]["ros__parameters"]["topics_config"] = str(config_dir() / "topics.yaml")
    vehicle["safety_node"]["ros__parameters"]["safety"]["extra_monitored_roles"] = ["command_raw", "camera"]
    vehicle_path = tmp_path / "vehicle.yaml"
    vehicle_path.write_text(yaml.safe_dump(vehicle))
    args = ["replay", str(bag), "--bundle", str(bundle), "--out", str(tmp_path / "cli-out"), "--params",
            str(vehicle_path), "--public-key", str(keypair[1])]  # fmt: skip
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 1
    out = capsys.readouterr()
    assert "0 fallback(s)" in out.out and f"({d['frames']} in INIT)" in out.out.replace("0 active, ", "")
    assert "FAULT: " in out.err and "never left INIT (stale:camera" in out.err
    assert "(monitored: imu, odometry, command_raw, camera)" in out.err
