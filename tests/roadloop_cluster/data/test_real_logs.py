"""A car's own log through `data check` and `data build`: conventions found and fixed by config, labels from a
status topic, one bag split by time without leakage; checked against the drive's true trajectory."""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from roadloop_cluster.data import BuildOptions, NoUsableInputError, build_dataset, read_dataset_index
from roadloop_cluster.data.config import load_dataset_config
from roadloop_core.bag import open_bag
from roadloop_core.registry import load_registry
from roadloop_core.typesys import typestore_for
from roadloop_vehicle.observation.assembler import ObservationAssembler
from tests.support.real_bags import REAL_LOG_CONFIG, UNCHECKED, UNCHECKED_LABELS, RealTrack, real_log_config

from ..conftest import REAL_DRIVE
from .test_build import shard_arrays

CONFIG, TOPICS = REAL_LOG_CONFIG / "dataset.yaml", REAL_LOG_CONFIG / "topics.yaml"


def roadloop(*args: str) -> subprocess.CompletedProcess[str]:
    cmd = [str(Path(sys.executable).parent / "roadloop"), *args]
    env = {**os.environ, "COLUMNS": "250"}  # rich wraps at the terminal width: keep a finding on one line
    return subprocess.run(cmd, capture_output=True, text=True, timeout=600, check=False, env=env)


@pytest.fixture(scope="module")
def real_dataset(real_bag: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("real-ds") / "dataset"
    build_dataset([real_bag], out, BuildOptions(CONFIG, TOPICS, workers=1, progress=False))
    return out


@pytest.mark.slow
def test_check_finds_every_convention_problem_at_once_with_its_fix(real_bag: Path, tmp_path: Path) -> None:
    unchecked = real_log_config(tmp_path / "first.yaml", UNCHECKED, labels=UNCHECKED_LABELS)
    res = roadloop("data", "check", str(real_bag), "--config", str(unchecked), "--topics", str(TOPICS),
                   "--json", str(tmp_path / "f.json"))  # fmt: skip
    assert res.returncode == 1, res.stdout + res.stderr
    found = json.loads((tmp_path / "f.json").read_text())["bags"][0]["findings"]
    by_code = {(f["code"], f["severity"]): f for f in found}
    assert by_code[("imu_yaw", "error")]["fix"] == "set observation.imu_frame: frd"
    assert "r = -0.9" in by_code[("imu_yaw", "error")]["message"]
    assert by_code[("imu_accel", "error")]["fix"] == "set observation.imu_frame: frd"
    steering = by_code[("steering", "error")]
    assert "a steering-wheel angle" in steering["message"]
    assert float(steering["fix"].rsplit(" ", 1)[1]) == pytest.approx(REAL_DRIVE.steering_ratio, rel=0.03)
    heading = by_code[("heading", "warning")]
    assert float(heading["fix"].rsplit(" ", 1)[1]) == pytest.approx(-REAL_DRIVE.heading_bias_deg, abs=0.1)
    assert {f["severity"] for f in found} <= {"error", "warning", "info"} and len(
        [f for f in found if f["severity"] != "info"]
    ) == 4
    assert "3 error(s), 1 warning(s) in 1 bag(s): `data build` would skip 1 of them" in res.stdout
    # the builder runs the same checks and names every error of the bag in one go
    with pytest.raises(NoUsableInputError) as err:
        build_dataset([real_bag], tmp_path / "ds", BuildOptions(unchecked, TOPICS, workers=1, progress=False))
    for code in ("imu_frame: frd", "steering_ratio"):
        assert code in str(err.value)
    assert str(err.value).count("->") == 3 and not (tmp_path / "ds").exists()


@pytest.mark.slow
def test_check_passes_with_the_documented_config(real_bag: Path) -> None:
    res = roadloop("data", "check", str(real_bag), "--config", str(CONFIG), "--topics", str(TOPICS))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "0 error(s), 0 warning(s) in 1 bag(s): ready to build" in res.stdout
    for topic, rate in (
        ("/sensing/imu/data", "100 Hz"),
        ("/localization/odometry", "20 Hz"),
        ("/vehicle/status", "50 Hz"),
    ):
        assert any(topic in line and rate in line for line in res.stdout.splitlines()), res.stdout


@pytest.mark.slow
def test_missing_topics_types_and_rates_are_listed_together(real_bag: Path, tmp_path: Path) -> None:
    reg = yaml.safe_load(TOPICS.read_text())
    reg["topics"]["vehicle_status"]["name"] = "/vehicle/status_report"  # not what the car records
    reg["topics"]["imu"]["name"] = "/sensing/gnss/fix"  # the GNSS topic, as an IMU (and no gnss role)
    del reg["topics"]["gnss"]
    reg["topics"]["odometry"]["rate_hz"] = 50.0  # it runs at 20 Hz
    topics = tmp_path / "topics.yaml"
    topics.write_text(yaml.safe_dump(reg))
    res = roadloop("data", "check", str(real_bag), "--config", str(CONFIG), "--topics", str(topics),
                   "--json", str(tmp_path / "f.json"))  # fmt: skip
    assert res.returncode == 1
    found = {f["code"]: f for f in json.loads((tmp_path / "f.json").read_text())["bags"][0]["findings"]}
    assert found["missing_topic"]["subject"] == "/vehicle/status_report (vehicle_status)"
    assert found["missing_topic"]["fix"].startswith("set topics.vehicle_status.name to the bag's /vehicle/status")
    assert found["type"]["message"] == (
        "the bag records it as sensor_msgs/msg/NavSatFix, the topic registry says sensor_msgs/msg/Imu"
    )
    assert found["rate"]["fix"] == "set topics.odometry.rate_hz: 20 in the topic registry"
    # a registry whose role types the builder cannot read is refused before any bag is opened
    reg["topics"]["odometry"]["type"] = "sensor_msgs/msg/NavSatFix"
    topics.write_text(yaml.safe_dump(reg))
    with pytest.raises(Exception, match=r"reads nav_msgs/msg/Odometry"):
        build_dataset([real_bag], tmp_path / "ds", BuildOptions(CONFIG, topics, workers=1, progress=False))


@pytest.mark.slow
def test_one_bag_is_split_by_time_without_leakage(real_dataset: Path) -> None:
    index = read_dataset_index(real_dataset)
    assert index.split_by == "time" and index.split_gap_s == pytest.approx(4.0 + 2.2)
    assert {b.split for b in index.time_blocks} == {"train", "val"} and index.sources[0].split == "time"
    train, val = shard_arrays(real_dataset, "train"), shard_arrays(real_dataset, "val")
    assert len(val["stamp_ns"]) > 300 and len(train["stamp_ns"]) > 4 * len(val["stamp_ns"]) * 0.8
    gap = np.abs(train["stamp_ns"][:, None] - val["stamp_ns"][None, :]).min() / 1e9
    assert gap >= index.split_gap_s
    assert "image" not in train and "route_target" not in train and train["ego_history"].shape[1:] == (10, 4)
    assert index.array_sources["command"] == (
        "drive of /vehicle/status (role vehicle_status) nearest the frame, steering_angle / 15.4"
    )
    res = roadloop("data", "info", str(real_dataset))
    assert res.returncode == 0 and "splits: by time blocks inside the bags (at least 6.2 s" in res.stdout


@pytest.mark.slow
def test_features_and_labels_match_the_true_drive(real_dataset: Path) -> None:
    """With the conventions configured, the dataset says what the car did: labels within centimetres of
    the true future, the IMU back in REP-103 axes, steering as the road-wheel angle, the spike filtered."""
    track = RealTrack(REAL_DRIVE)
    a = shard_arrays(real_dataset, "train")
    t = (a["stamp_ns"] - REAL_DRIVE.start_ns) / 1e9
    i = np.array([track.index(s) for s in t])
    steps = np.arange(1, 9) * 0.5
    future = np.array([[track.index(s + k) for k in steps] for s in t])
    dx, dy = track.x[future] - track.x[i, None], track.y[future] - track.y[i, None]
    c, s = np.cos(track.yaw[i])[:, None], np.sin(track.yaw[i])[:, None]
    truth = np.stack([c * dx + s * dy, -s * dx + c * dy], axis=-1)
    err = np.linalg.norm(a["waypoints"] - truth, axis=-1)
    assert err[:, 5].mean() < 0.1 and err.max() < 0.5  # the 0.8° bias would put 1.3 m sideways at 90 m
    ego = a["ego_state"]
    assert np.abs(ego[:, 1] - track.yaw_rate[i]).mean() < 0.003  # frd turned back into z-up
    assert np.corrcoef(ego[:, 3], track.speed[i] * track.yaw_rate[i])[0, 1] > 0.9
    road_wheel = np.arctan(REAL_DRIVE.wheelbase_m * track.yaw_rate[i] / track.speed[i])
    assert np.abs(a["command"][:, 0] - road_wheel).mean() < 5e-4  # steering-wheel angle / 15.4
    spike_at = np.flatnonzero(np.abs(t - REAL_DRIVE.imu_spike[0]) < 1e-6)  # type: ignore[index]
    if len(spike_at):  # the frame of the 6.2 m/s² sample (median of its 10 samples)
        assert abs(ego[spike_at[0], 2] - track.accel[i[spike_at[0]]]) < 0.5
    assert np.abs(ego[:, 2] - track.accel[i]).max() < 1.5


@pytest.mark.slow
def test_the_vehicle_computes_the_same_features_bit_for_bit(real_bag: Path, real_dataset: Path) -> None:
    """The car's ObservationAssembler, fed the bag's bytes message by message, gives every array of the dataset
    (ego state and ego history included) exactly."""
    spec = read_dataset_index(real_dataset).observation
    assert spec == load_dataset_config(CONFIG).observation
    registry = load_registry(TOPICS)
    assembler = ObservationAssembler(spec, registry, typestore_for(registry.typestore))
    roles = {registry[r].name: r for r in spec.roles(onboard=True)}
    online = {}
    with open_bag(real_bag) as bag:
        for raw in bag.messages():
            role = roles.get(raw.topic)
            if role is not None:
                for f in assembler.step(role, raw.data):
                    online[f.stamp_ns] = f
    for split in ("train", "val"):
        a = shard_arrays(real_dataset, split)
        for row, stamp in enumerate(a["stamp_ns"].tolist()):
            f = online[stamp]
            assert set(f.values) == {"ego_state", "ego_history"}
            for name, value in f.values.items():
                np.testing.assert_array_equal(value, a[name][row])


@pytest.mark.slow
def test_a_hindsight_route_is_the_logged_path_and_says_so(real_bag: Path, tmp_path: Path) -> None:
    config = real_log_config(tmp_path / "h.yaml", {"route_source": "hindsight", "ego_history_steps": 0})
    out = tmp_path / "ds"
    build_dataset([real_bag], out, BuildOptions(config, TOPICS, workers=1, progress=False))
    index = read_dataset_index(out)
    assert index.observation.route_source == "hindsight"
    assert index.array_sources["route_target"].startswith("HINDSIGHT: the logged future path of /localization/")
    a = shard_arrays(out, "train")
    track = RealTrack(REAL_DRIVE)
    i = [track.index((s - REAL_DRIVE.start_ns) / 1e9) for s in a["stamp_ns"]]
    dist = np.hypot(a["route_target"][:, 0], a["route_target"][:, 1])
    np.testing.assert_allclose(dist, 10.0, atol=0.05)  # 10 m along a nearly straight path
    lateral = a["route_target"][:, 1]
    # the logged path curves with the drive: about v * yaw rate / 2 * (10 m / v)^2 sideways
    expected = 0.5 * track.yaw_rate[i] / track.speed[i] * 100.0
    assert np.abs(lateral - expected).mean() < 0.05 and math.isfinite(float(lateral.std()))


def test_the_example_configs_agree() -> None:
    """config/real-log/: the dataset config's roles are the registry's, typed as the builder reads them; the
    training config trains the state model with the kinematic prior."""
    from roadloop_cluster.data.check import needed_roles, registry_findings
    from roadloop_cluster.train.config import load_train_config

    cfg, reg = load_dataset_config(CONFIG), load_registry(TOPICS)
    assert registry_findings(cfg, reg) == []
    assert set(needed_roles(cfg)) == {"imu", "odometry", "vehicle_status"}
    assert reg["command"].name != reg["vehicle_status"].name  # the label is not what the stack publishes
    train = load_train_config(REAL_LOG_CONFIG / "train.yaml")
    assert (train.model.prior, train.run.threads_per_rank) == ("ctra", 1)


@pytest.mark.slow
def test_a_car_with_its_imu_z_up_is_told_to_undo_the_frd_setting(tmp_path: Path) -> None:
    """The other variant: an IMU mounted z-up (REP-103) checked with this car's `imu_frame: frd`."""
    from tests.support.real_bags import RealDrive, write_real_bag

    bag = write_real_bag(
        tmp_path / "z-up", RealDrive(duration_s=120.0, seed=4, imu_z_down=False), load_registry(TOPICS)
    )
    res = roadloop("data", "check", str(bag), "--config", str(CONFIG), "--topics", str(TOPICS),
                   "--json", str(tmp_path / "f.json"))  # fmt: skip
    assert res.returncode == 1
    found = json.loads((tmp_path / "f.json").read_text())["bags"][0]["findings"]
    errors = {(f["code"], f["fix"]) for f in found if f["severity"] == "error"}
    assert errors == {("imu_yaw", "set observation.imu_frame: flu"), ("imu_accel", "set observation.imu_frame: flu")}


@pytest.mark.slow
def test_a_single_60_s_drive_builds_with_a_val_split_as_shipped(tmp_path: Path) -> None:
    """The issue's drive: one 60 s bag and the shipped config (split_block_s 60) -- shorter blocks, not
    `split 'val' has no shards`, and still no sample within label horizon + ego history of the other split."""
    from tests.support.real_bags import RealDrive, write_real_bag

    bag = write_real_bag(tmp_path / "short", RealDrive(duration_s=60.0, seed=1), load_registry(TOPICS))
    check = roadloop("data", "check", str(bag), "--config", str(CONFIG), "--topics", str(TOPICS))
    assert check.returncode == 0 and "ready to build" in check.stdout, check.stdout + check.stderr
    assert "4 block(s) of about 15 s (shorter than build.split_block_s 60 s" in check.stdout
    out = tmp_path / "ds"
    build_dataset([bag], out, BuildOptions(CONFIG, TOPICS, workers=1, progress=False))
    index = read_dataset_index(out)
    assert index.split_by == "time" and [b.split for b in index.time_blocks].count("val") == 1
    train, val = shard_arrays(out, "train"), shard_arrays(out, "val")
    assert len(val["stamp_ns"]) > 50 and len(train["stamp_ns"]) > 2 * len(val["stamp_ns"])
    gap = np.abs(train["stamp_ns"][:, None] - val["stamp_ns"][None, :]).min() / 1e9
    assert gap >= index.split_gap_s


@pytest.mark.parametrize("bag", ["mcap/talker", "sqlite3/talker", "sqlite3/empty_bag"])
def test_check_on_bags_written_by_real_rosbag2_names_every_missing_role_and_nothing_else(
    conformance_dir: Path, bag: str, tmp_path: Path
) -> None:
    """Bags from rosbag2's own test resources (a talker's /chatter, an empty bag): none of this car's topics.
    Every missing role is an error with its fix, and nothing is judged on data that is not there (no motion
    check without odometry, no split plan without a usable bag)."""
    res = roadloop("data", "check", str(conformance_dir / bag), "--config", str(CONFIG), "--topics", str(TOPICS),
                   "--json", str(tmp_path / "f.json"))  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr, res.stdout + res.stderr
    doc = json.loads((tmp_path / "f.json").read_text())
    found = doc["bags"][0]["findings"]
    assert {(f["code"], f["severity"]) for f in found} == {("missing_topic", "error")}
    assert {f["subject"] for f in found} == {
        "/sensing/imu/data (imu)",
        "/localization/odometry (odometry)",
        "/vehicle/status (vehicle_status)",
    }
    assert doc["split"] is None
    assert "3 error(s), 0 warning(s) in 1 bag(s)" in res.stdout


def test_check_on_a_real_bag_in_an_unknown_serialization_is_one_line(conformance_dir: Path) -> None:
    res = roadloop("data", "check", str(conformance_dir / "sqlite3" / "wrong_rmw_test"), "--config", str(CONFIG),
                   "--topics", str(TOPICS))  # fmt: skip
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert "uses serialization format 'wrong_format'; only cdr can be read" in " ".join(res.stdout.split())
