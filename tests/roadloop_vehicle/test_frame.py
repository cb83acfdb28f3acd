"""DriveFrame: what crosses from drive_node to safety_node arrives bit for bit; a wrong message is one error."""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from roadloop_core.config import config_dir
from roadloop_core.errors import ConfigError
from roadloop_core.registry import load_registry
from roadloop_core.typesys import typestore_for
from roadloop_vehicle.control.controller import Command
from roadloop_vehicle.errors import InterfaceError
from roadloop_vehicle.frame import FRAME_TYPE, DriveFrame, check_frame_role, decode_frame, encode_frame

STORE = typestore_for("jazzy")
REG = load_registry(config_dir() / "topics.yaml")


def roundtrip(frame: DriveFrame) -> DriveFrame:
    data = STORE.serialize_cdr(encode_frame(STORE, frame), FRAME_TYPE)
    return decode_frame(STORE.deserialize_cdr(data, FRAME_TYPE))


def test_a_frame_crosses_bit_for_bit_with_the_braking_sign() -> None:
    """float64 command values (Ackermann's float32 rounded them) and a negative acceleration (Ackermann's is a
    magnitude) arrive as the controller computed them; waypoints as the policy emitted them."""
    wp = np.array([[1.0 / 3.0, -2.0e-7], [math.pi, 1e30]], np.float32)
    cmd = Command(0.1 + 1e-12, 7.123456789012345, -2.5000000001, 0.3, -0.01)
    frame = DriveFrame(1_700_000_000_123_456_789, "tiny-v7", True, cmd, 47.5 + 1e-9, wp)
    back = roundtrip(frame)
    assert back.command == cmd and back.command is not None and back.command.acceleration < 0
    assert back.waypoints is not None and back.waypoints.dtype == np.float32
    assert np.array_equal(back.waypoints, wp) and back.target_speed == frame.target_speed
    assert (back.stamp_ns, back.model, back.model_available) == (frame.stamp_ns, "tiny-v7", True)


def test_a_frame_without_a_model_says_so() -> None:
    back = roundtrip(DriveFrame(5, None, False, None))
    assert back == DriveFrame(5, None, False, None)


def test_nan_survives_the_crossing() -> None:
    cmd = Command(math.nan, 1.0, 0.0)
    back = roundtrip(DriveFrame(5, "m", True, cmd, math.nan, np.full((2, 2), math.nan, np.float32)))
    assert back.command is not None and math.isnan(back.command.steering_angle)
    assert back.target_speed is not None and math.isnan(back.target_speed)
    assert back.waypoints is not None and np.isnan(back.waypoints).all()


def test_another_parameter_event_is_refused_naming_the_topic() -> None:
    msg = encode_frame(STORE, DriveFrame(5, "m", True, None))
    with pytest.raises(InterfaceError, match=r"^/control/command_raw: not a drive frame \(node '/talker'"):
        decode_frame(replace(msg, node="/talker"), "/control/command_raw")
    wrong = [
        replace(p, value=replace(p.value, type=4)) if p.name == "model_available" else p for p in msg.new_parameters
    ]
    with pytest.raises(InterfaceError, match="field model_available has parameter type 4, expected 1"):
        decode_frame(replace(msg, new_parameters=wrong))


def test_a_registry_with_another_command_raw_type_is_one_config_error() -> None:
    check_frame_role(REG)
    old = replace(
        REG,
        topics={
            **REG.topics,
            "command_raw": replace(REG["command_raw"], type="ackermann_msgs/msg/AckermannDriveStamped"),
        },
    )
    with pytest.raises(ConfigError, match=r"topics.command_raw.type is ackermann_msgs/msg/AckermannDriveStamped"):
        check_frame_role(old)
