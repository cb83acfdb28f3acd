"""Message classes from type names, the generated ackermann_msgs, and byte-level interop with rclpy.

The bag is the wire: the CDR our rosbags typestore writes must be what a stock ROS 2 node
reads, and a stock ROS 2 node must see our commands as the real ackermann_msgs type (same
DDS type name, same RIHS01 type hash), or it would never match our publisher.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pytest

from roadloop_core.config import config_dir
from roadloop_core.registry import load_registry
from roadloop_core.typesys import typestore_for
from roadloop_vehicle.control.controller import Command
from roadloop_vehicle.errors import InterfaceError
from roadloop_vehicle.frame import DriveFrame, encode_frame
from roadloop_vehicle.output_messages import command_msg, diagnostics_msg, trajectory_msg
from roadloop_vehicle.ros.interfaces import message_class

pytestmark = pytest.mark.needs("rclpy", "ackermann_msgs")

# RIHS01 hashes of the real ros-jazzy-ackermann-msgs (2.0.2), as its generated C code publishes them
# (ackermann_drive__description.c / ackermann_drive_stamped__description.c of a colcon build of upstream),
# and of the std types they embed, as the PyPI std_msgs/builtin_interfaces wheels ship them.
UPSTREAM_HASHES = {
    "ackermann_msgs/msg/AckermannDrive": "RIHS01_acf287a224a947dd1b0b87d6d76cdb73f497b0237b8fc73be2173b2ebbb82c99",
    "ackermann_msgs/msg/AckermannDriveStamped": (
        "RIHS01_48ca7612a08d3bb72744fd98b71b7cf2ea24c6ad50fa4e1aa0bbad963c90d8cf"
    ),
    "std_msgs/msg/Header": "RIHS01_f49fb3ae2cf070f793645ff749683ac6b06203e41c891e17701b1cb597ce6a01",
    "builtin_interfaces/msg/Time": "RIHS01_b106235e25a4c5ed35098aa0a61a3ee9c9b18d197f398b0e4206cea9acf9c197",
}
STOCK_SUBSCRIBER = Path(__file__).with_name("stock_subscriber.py")


@pytest.mark.parametrize(
    ("typename", "module", "name"),
    [
        ("sensor_msgs/msg/Image", "sensor_msgs.msg", "Image"),
        ("ackermann_msgs/msg/AckermannDriveStamped", "ackermann_msgs.msg", "AckermannDriveStamped"),
        ("rosgraph_msgs/msg/Clock", "rosgraph_msgs.msg", "Clock"),
        ("rcl_interfaces/srv/GetParameters_Event", "rcl_interfaces.srv", "GetParameters_Event"),
    ],
)
def test_message_class_from_type_name(typename: str, module: str, name: str) -> None:
    cls = message_class(typename)
    assert cls.__module__.startswith(module)
    assert cls.__name__ == name


@pytest.mark.parametrize(
    ("typename", "needle"),
    [
        ("test_msgs/msg/Arrays", "/t (test_msgs/msg/Arrays): its interface package test_msgs is not installed"),
        ("std_msgs/msg/NoSuchType", "/t (std_msgs/msg/NoSuchType): the installed std_msgs.msg has no NoSuchType"),
        ("std_msgs/NoSuchType", "not a ROS 2 interface type name"),
        ("std_msgs/msg/", "not a ROS 2 interface type name"),
    ],
)
def test_unknown_type_is_one_line_naming_the_topic(typename: str, needle: str) -> None:
    with pytest.raises(InterfaceError) as err:
        message_class(typename, "/t")
    assert needle in str(err.value) and "\n" not in str(err.value)


def test_generated_ackermann_msgs_carries_upstreams_type_hashes() -> None:
    """The type description rosidl generated (and installed beside the messages) names upstream's hashes."""
    import ackermann_msgs

    share = Path(ackermann_msgs.__file__).parents[4] / "share" / "ackermann_msgs" / "msg"
    for name in ("AckermannDrive", "AckermannDriveStamped"):
        described = json.loads((share / f"{name}.json").read_text())
        hashes = {h["type_name"]: h["hash_string"] for h in described["type_hashes"]}
        assert hashes == {k: v for k, v in UPSTREAM_HASHES.items() if k in hashes}
        assert f"ackermann_msgs/msg/{name}" in hashes


# -- our CDR versus rclpy's, for every registry type ----------------------------------------------------


def _rclpy_message(value: Any, cls: type[Any]) -> Any:
    """The rclpy message with the fields of rosbags message `value`."""
    msg = cls()
    for name, ftype in cls.get_fields_and_field_types().items():
        v = getattr(value, name)
        current = getattr(msg, name)
        if hasattr(current, "get_fields_and_field_types"):
            setattr(msg, name, _rclpy_message(v, type(current)))
        elif "/" in ftype:  # sequence or array of messages: sequence<pkg/Name>, pkg/Name[3]
            inner = ftype.removeprefix("sequence<").split(">")[0].split("[")[0].split(",")[0]
            pkg, typ = inner.split("/")
            setattr(msg, name, [_rclpy_message(x, message_class(f"{pkg}/msg/{typ}")) for x in v])
        elif ftype == "octet":  # rclpy holds a ROS `byte` as a 1-byte bytes, rosbags as an int
            setattr(msg, name, bytes([v]))
        elif ftype == "sequence<octet>":  # rclpy: a list of 1-byte bytes; rosbags: a uint8 array
            setattr(msg, name, [bytes([x]) for x in v])
        elif isinstance(v, np.ndarray):
            setattr(msg, name, bytes(v) if v.dtype == np.uint8 else v.tolist())
        else:
            setattr(msg, name, v)
    return msg


def _registry_messages(fx: ModuleType) -> dict[str, Any]:
    """One realistic message of every type in the registry, as the car's code builds them."""
    reg = load_registry(config_dir() / "topics.yaml")
    store = typestore_for(reg.typestore)
    by_topic = {topic: msg for topic, _, msg in fx.drive_messages(reg, seconds=0.2)}
    T = store.types
    stamp = 1_700_000_123_456_789_012
    fix = T["sensor_msgs/msg/NavSatFix"](
        header=by_topic[reg["imu"].name].header,
        status=T["sensor_msgs/msg/NavSatStatus"](status=0, service=1),
        latitude=48.137154,
        longitude=11.576124,
        altitude=519.5,
        position_covariance=np.arange(9, dtype=np.float64),
        position_covariance_type=2,
    )
    waypoints = np.array([[0.5 * i, 0.01 * i * i] for i in range(8)], dtype=np.float32)
    msgs = {
        "sensor_msgs/msg/Image": by_topic[reg["camera"].name],
        "sensor_msgs/msg/Imu": by_topic[reg["imu"].name],
        "sensor_msgs/msg/NavSatFix": fix,
        "nav_msgs/msg/Odometry": by_topic[reg["odometry"].name],
        "nav_msgs/msg/Path": trajectory_msg(store, stamp, waypoints, "base_link"),
        "diagnostic_msgs/msg/DiagnosticArray": diagnostics_msg(
            store, stamp, [(2, "roadloop/safety", "controlled stop: stale:camera", {"state": "fallback", "k": "v"})]
        ),
        "ackermann_msgs/msg/AckermannDriveStamped": command_msg(
            store, stamp, Command(steering_angle=-0.125, speed=7.5, acceleration=-1.5, jerk=0.25), "base_link"
        ),
        "rcl_interfaces/msg/ParameterEvent": encode_frame(
            store,
            DriveFrame(stamp, "tiny-v3", True, Command(-0.125, 7.5, -1.5, 0.25, 0.5), 7.25, waypoints),
        ),
    }
    assert set(msgs) == {t.type for t in reg.topics.values()}, "a registry type without a message here"
    return msgs


@pytest.mark.parametrize(
    "typename",
    [
        "sensor_msgs/msg/Image",
        "sensor_msgs/msg/Imu",
        "sensor_msgs/msg/NavSatFix",
        "nav_msgs/msg/Odometry",
        "nav_msgs/msg/Path",
        "diagnostic_msgs/msg/DiagnosticArray",
        "ackermann_msgs/msg/AckermannDriveStamped",
        "rcl_interfaces/msg/ParameterEvent",
    ],
)
def test_our_cdr_is_what_rclpy_serialises(fx: ModuleType, typename: str) -> None:
    from rclpy.serialization import deserialize_message, serialize_message

    store = typestore_for("jazzy")
    value = _registry_messages(fx)[typename]
    cls = message_class(typename)
    theirs_msg = _rclpy_message(value, cls)
    ours = bytes(store.serialize_cdr(value, typename))
    theirs = serialize_message(theirs_msg)
    if typename == "rcl_interfaces/msg/ParameterEvent":
        # rmw_serialize sizes its buffer by Fast CDR's size estimate, which over-counts this type's sequences, so
        # serialize_message ends in a few unused bytes (a publisher sends the serialized length only)
        assert len(ours) < len(theirs) <= len(ours) + 8 * 8
        theirs = theirs[: len(ours)]
    assert len(ours) == len(theirs)
    assert deserialize_message(ours, cls) == theirs_msg  # rclpy reads our bytes as the same message
    assert bytes(store.serialize_cdr(store.deserialize_cdr(theirs, typename), typename)) == ours  # and we read its
    # Byte for byte, except alignment padding: ours is zero, Fast CDR leaves whatever was in its buffer there.
    differing = [i for i in range(len(ours)) if ours[i] != theirs[i]]
    assert all(ours[i] == 0 for i in differing), differing


# -- a stock subscriber on the DDS graph --------------------------------------------------------------


@pytest.fixture
def default_context(ros_graph: Any) -> Iterator[None]:
    """rclpy's default context (what RosNode, the node layer, uses), without rclpy's signal handlers."""
    import rclpy
    from rclpy.signals import SignalHandlerOptions

    rclpy.init(signal_handler_options=SignalHandlerOptions.NO)
    yield
    rclpy.try_shutdown()


def test_stock_subscriber_receives_our_raw_commands_as_the_real_type(default_context: None) -> None:
    """RosNode publishes rosbags-serialized bytes; a plain rclpy program with the generated class receives them."""
    from roadloop_vehicle.ros.adapter import RosNode

    reg = load_registry(config_dir() / "topics.yaml")
    topic = reg["command"].name
    sent = [
        Command(steering_angle=0.05 * i, speed=1.0 + i, acceleration=-0.5 * i, jerk=0.125, steering_angle_velocity=0.25)
        for i in range(5)
    ]
    stamps = [1_700_000_000_000_000_000 + i * 100_000_000 for i in range(len(sent))]
    child = subprocess.Popen(
        [sys.executable, str(STOCK_SUBSCRIBER), topic, str(len(sent))], stdout=subprocess.PIPE, text=True
    )
    try:
        assert child.stdout is not None and child.stdout.readline().strip() == "ready"
        node = RosNode("roadloop_command_publisher")
        node.use_registry(reg)
        publish = node.publisher("command")
        deadline = time.monotonic() + 120
        while node.node.count_subscribers(topic) == 0 and time.monotonic() < deadline:
            time.sleep(0.05)
        assert node.node.count_subscribers(topic) == 1, "the stock subscriber never matched our publisher"
        # reliable: once our writer knows the reader, every sample reaches it (resent until acknowledged)
        for stamp, cmd in zip(stamps, sent, strict=True):
            publish(command_msg(node.typestore, stamp, cmd, "base_link"))
        out, _ = child.communicate(timeout=180)
    finally:
        child.kill()
        child.wait()
    assert child.returncode == 0, out
    lines = [json.loads(line) for line in out.splitlines()]
    received, graph = lines[:-1], lines[-1]["publishers"]
    assert [r["stamp"] for r in received] == [[s // 10**9, s % 10**9, "base_link"] for s in stamps]
    for r, cmd in zip(received, sent, strict=True):
        # acceleration is a magnitude on the wire (ackermann_msgs semantics, docs/vehicle.md)
        expected = [cmd.steering_angle, cmd.steering_angle_velocity, cmd.speed, abs(cmd.acceleration), cmd.jerk]
        assert r["drive"] == pytest.approx(expected, abs=1e-6)
    # what the subscriber's graph says about our publisher: the type name rmw demangled from the DDS type
    # name (ackermann_msgs::msg::dds_::AckermannDriveStamped_) and the type hash our publisher announced
    assert [(p["type"], p["hash"]) for p in graph] == [
        ("ackermann_msgs/msg/AckermannDriveStamped", UPSTREAM_HASHES["ackermann_msgs/msg/AckermannDriveStamped"])
    ]
    node.node.destroy_node()
