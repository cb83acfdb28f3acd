"""Topic registry loader: the shipped config/topics.yaml and table tests of every rejected shape."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from roadloop_core.config import config_dir
from roadloop_core.errors import ConfigError
from roadloop_core.registry import QosProfile, load_registry
from roadloop_core.typesys import make_typestore

BRIEF_DEFAULTS = {
    "camera": ("/sensors/camera/front/image", "sensor_msgs/msg/Image"),
    "imu": ("/sensors/imu", "sensor_msgs/msg/Imu"),
    "gnss": ("/sensors/gnss/fix", "sensor_msgs/msg/NavSatFix"),
    "odometry": ("/localization/odometry", "nav_msgs/msg/Odometry"),
    "route": ("/planning/route", "nav_msgs/msg/Path"),
    "trajectory": ("/planning/trajectory", "nav_msgs/msg/Path"),
    "command": ("/control/command", "ackermann_msgs/msg/AckermannDriveStamped"),
    "diagnostics": ("/diagnostics", "diagnostic_msgs/msg/DiagnosticArray"),
}


def test_shipped_registry_has_the_brief_defaults() -> None:
    reg = load_registry(config_dir() / "topics.yaml")
    for role, (name, typ) in BRIEF_DEFAULTS.items():
        assert (reg[role].name, reg[role].type) == (name, typ)
    assert reg["camera"].qos.profile is QosProfile.SENSOR and not reg["camera"].qos.reliable
    assert reg["command"].qos.reliable and not reg["command"].qos.transient_local
    assert reg["route"].qos.transient_local
    assert reg.by_name("/sensors/imu") is reg["imu"]
    assert reg.by_name("/nope") is None
    assert all(t.record for t in reg.recorded())
    store = make_typestore(reg.typestore)
    assert all(t.type in store.fielddefs for t in reg.topics.values())  # every type decodable


def _write(tmp: Path, topics: object, **top: object) -> Path:
    path = tmp / "topics.yaml"
    path.write_text(yaml.safe_dump({"topics": topics, **top}))
    return path


GOOD = {"name": "/a", "type": "std_msgs/msg/String", "rate_hz": 10.0}

BAD = [
    ({}, "non-empty mapping"),
    ([], "non-empty mapping"),
    ({"x": "scalar"}, "topics.x: expected a mapping"),
    ({"x": {"type": "std_msgs/msg/String", "rate_hz": 1}}, "topics.x: missing field 'name'"),
    ({"x": {**GOOD, "name": "a"}}, "topics.x.name: 'a' must be an absolute topic name"),
    ({"x": {**GOOD, "rate_hz": 0}}, "topics.x.rate_hz: must be > 0"),
    ({"x": {**GOOD, "rate_hz": "fast"}}, "topics.x:"),
    ({"x": {**GOOD, "type": "String"}}, "must look like pkg/msg/Name"),
    ({"x": {**GOOD, "qos": {"profile": "weird"}}}, "topics.x:"),
    ({"x": GOOD, "y": GOOD}, "topic names used twice: /a"),
]


@pytest.mark.parametrize(("topics", "fault"), BAD)
def test_rejected_registries_name_file_and_field(tmp_path: Path, topics: object, fault: str) -> None:
    path = _write(tmp_path, topics)
    with pytest.raises(ConfigError) as err:
        load_registry(path)
    assert fault in str(err.value) and str(path) in str(err.value)


def test_unknown_role_is_a_config_error(tmp_path: Path) -> None:
    reg = load_registry(_write(tmp_path, {"x": GOOD}, typestore="humble"))
    assert reg.typestore == "humble"
    with pytest.raises(ConfigError, match="no topic with role 'camera'"):
        reg["camera"]


def test_qos_defaults_and_rosbag2_text(tmp_path: Path) -> None:
    reg = load_registry(
        _write(tmp_path, {"x": GOOD, "y": {**GOOD, "name": "/b", "qos": {"profile": "latched", "depth": 1}}})
    )
    assert reg["x"].qos.profile is QosProfile.SENSOR and reg["x"].qos.depth == 10
    text = reg["y"].qos.to_rosbag2_yaml()
    assert yaml.safe_load(text)[0]["reliability"] == 1 and yaml.safe_load(text)[0]["durability"] == 1
    assert reg["x"].stale_after_s(3.0) == pytest.approx(0.3)
