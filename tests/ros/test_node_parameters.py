"""The nodes' parameter declaration under the real rclpy: `--params-file config/vehicle.yaml` (with its `/**`
section) gives the same config replay loads, each parameter is declared statically typed with its
description, range and read_only, and a bad value is one ConfigError naming the node and parameter.

Needs only rclpy and rcl_interfaces (the ros-jazzy-rclpy wheels are enough, no ROS install); skipped
where rclpy cannot run (rclpy-intellisense ships rclpy's sources only).
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from roadloop_core.errors import ConfigError


def _missing_rclpy() -> str | None:
    for mod in ("rclpy._rclpy_pybind11", "rcl_interfaces.msg"):
        try:
            importlib.import_module(mod)
        except ImportError as err:
            return f"{mod} cannot be imported ({err}); rclpy-intellisense ships rclpy's sources only"
    return None


REASON = _missing_rclpy()
pytestmark = [pytest.mark.ros, pytest.mark.skipif(REASON is not None, reason=REASON or "")]

REPO = Path(__file__).resolve().parents[2]
VEHICLE_YAML = REPO / "config" / "vehicle.yaml"


@pytest.fixture()
def ros(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """`rclpy.init` with a params file, on loopback and a domain of its own; shut down after the test."""
    import rclpy

    monkeypatch.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
    monkeypatch.setenv("ROS_DOMAIN_ID", str(100 + os.getpid() % 100))
    started: list[Any] = []

    def init(params_file: Path | None) -> Any:
        args = ["--ros-args", "--params-file", str(params_file)] if params_file is not None else []
        rclpy.init(args=args)
        started.append(rclpy)
        return rclpy

    yield init
    for r in started:
        r.try_shutdown()


def _node(name: str) -> Any:
    from roadloop_vehicle.ros.adapter import RosNode

    return RosNode(name)


def test_declared_parameters_equal_what_replay_loads(ros: Any) -> None:
    from roadloop_vehicle.params import DriveParams, SafetyParams, load_vehicle_params

    ros(VEHICLE_YAML)
    expected = load_vehicle_params(VEHICLE_YAML)
    drive, safety = _node("drive_node"), _node("safety_node")
    try:
        assert drive.parameters(DriveParams) == expected.drive
        assert safety.parameters(SafetyParams) == expected.safety  # vehicle_limits from the `/**` section
    finally:
        drive.node.destroy_node()
        safety.node.destroy_node()


def test_descriptor_holds_type_description_range_and_read_only(ros: Any) -> None:
    from rcl_interfaces.msg import ParameterType

    from roadloop_vehicle.params import DriveParams

    ros(VEHICLE_YAML)
    node = _node("drive_node")
    try:
        node.parameters(DriveParams)
        kp = node.node.describe_parameter("controller.kp")
        assert kp.type == ParameterType.PARAMETER_DOUBLE and kp.read_only
        assert kp.description.startswith("speed PID proportional gain")
        assert (kp.floating_point_range[0].from_value, kp.floating_point_range[0].to_value) == (0.0, 20.0)
        threads = node.node.describe_parameter("runtime.intra_op_threads")
        assert threads.type == ParameterType.PARAMETER_INTEGER and threads.integer_range[0].to_value == 256
        device = node.node.describe_parameter("runtime.device")
        assert device.additional_constraints == "one of: cpu, cuda, auto"
        from rclpy.parameter import Parameter

        (result,) = node.node.set_parameters([Parameter("controller.kp", value=1.0)])
        assert not result.successful and "read-only" in result.reason
    finally:
        node.node.destroy_node()


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        (
            "max_speed_mps: 30.0",
            "max_speed_mps: .inf",
            r"^safety_node\.vehicle_limits\.max_speed_mps: \.inf is not finite",
        ),
        ("max_speed_mps: 30.0", "max_speed_mps: 30", r"^safety_node\.vehicle_limits\.max_speed_mps: 30 is an integer"),
        (
            "recovery_frames: 10",
            "recovery_frames: 0",
            r"^safety_node\.safety\.recovery_frames: 0 is outside \[1, 10000\]",
        ),
        ("device: cpu", "device: gpu", r"^drive_node\.runtime\.device: 'gpu' is not one of cpu, cuda, auto$"),
        ("      nominal_dt_s: 0.1\n", "", r"^safety_node\.safety\.nominal_dt_s: required, not set \(run the node"),
    ],
)
def test_a_bad_value_is_one_config_error(ros: Any, tmp_path: Path, old: str, new: str, message: str) -> None:
    """The same words as `roadloop replay` says for that file (replay adds the file's name)."""
    from roadloop_vehicle.nodes import NODE_PARAMS

    text = VEHICLE_YAML.read_text()
    assert text.count(old) == 1
    bad = tmp_path / "vehicle.yaml"
    bad.write_text(text.replace(old, new))
    ros(bad)
    name = message[1:].split("\\.")[0]
    node = _node(name)
    try:
        with pytest.raises(ConfigError, match=message) as exc:
            node.parameters(NODE_PARAMS[name])
        assert "\n" not in str(exc.value)
    finally:
        node.node.destroy_node()
