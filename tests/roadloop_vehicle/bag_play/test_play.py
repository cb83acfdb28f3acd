"""`roadloop bag play` as a process on a real ROS 2 graph (Fast DDS on loopback, this session's domain).

A plain rclpy listener in the test process subscribes like the nodes do (the registry's QoS,
raw bytes) and records arrival times; the player is the real console script. Timing is checked
against the recording with generous tolerances: a loaded 2-core machine delays callbacks.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from roadloop_core.bag import open_bag
from roadloop_core.config import config_dir
from roadloop_core.registry import QosSpec, load_registry
from roadloop_core.typesys import typestore_for

pytestmark = pytest.mark.needs("rclpy")

ROADLOOP = shutil.which("roadloop", path=str(Path(sys.executable).parent)) or "roadloop"
TIMING_TOLERANCE_S = 0.5  # per message, against the recorded offset / rate
DEPTH = 1000  # the listener keeps everything: a slow callback must not cost a message


def start_player(*args: str) -> subprocess.Popen[str]:
    env = {**os.environ, "COLUMNS": "160"}
    return subprocess.Popen(
        [ROADLOOP, "bag", "play", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )


def finish(player: subprocess.Popen[str]) -> tuple[int, str, str]:
    try:
        out, err = player.communicate(timeout=300)
    finally:
        player.kill()
    return player.returncode, out, err


def recorded(bag: Path, topics: list[str] | None = None) -> list[tuple[str, int, bytes]]:
    with open_bag(bag) as b:
        return [(m.topic, m.timestamp_ns, bytes(m.data)) for m in b.messages(topics)]


def subscribe_like_the_nodes(listener: Any, topics: list[tuple[str, str, QosSpec]]) -> None:
    from roadloop_vehicle.ros.adapter import qos_profile
    from roadloop_vehicle.ros.interfaces import message_class

    for name, typename, qos in topics:
        listener.subscribe(name, message_class(typename), qos_profile(QosSpec(qos.profile, DEPTH)))


def assert_recorded_timing(got: list[Any], want: list[tuple[str, int, bytes]], rate: float) -> None:
    errors = [abs((g.t_ns - got[0].t_ns) - (w[1] - want[0][1]) / rate) / 1e9 for g, w in zip(got, want, strict=True)]
    assert max(errors) <= TIMING_TOLERANCE_S, f"worst timing error {max(errors):.3f} s (rate {rate})"


def test_every_message_arrives_with_its_bytes_in_order_at_the_recorded_timing(
    ros_listener: Any, fx: ModuleType, tmp_path: Path
) -> None:
    roles = ("camera", "imu", "odometry", "route")
    # Best-effort (the nodes' sensor QoS) may drop samples in transport when the machine is loaded: that is
    # what best-effort means, and once lost a whole CI run. The player is what is tested here, so it is
    # given (through its own --topics-config) a registry whose sensor topics are reliable with a deep history.
    topics = yaml.safe_load((config_dir() / "topics.yaml").read_text())
    for role in roles:
        topics["topics"][role]["qos"] = {"profile": "command", "depth": DEPTH}
    reliable = tmp_path / "topics.yaml"
    reliable.write_text(yaml.safe_dump(topics))
    reg = load_registry(reliable)
    bag = fx.write_drive_bag(tmp_path / "drive", seconds=3.0)
    want = recorded(bag)
    subscribe_like_the_nodes(ros_listener, [(reg[r].name, reg[r].type, reg[r].qos) for r in roles])
    from rclpy.qos import QoSProfile, ReliabilityPolicy

    from roadloop_vehicle.ros.interfaces import message_class

    clock_qos = QoSProfile(depth=DEPTH, reliability=ReliabilityPolicy.BEST_EFFORT)
    ros_listener.subscribe("/clock", message_class("rosgraph_msgs/msg/Clock"), clock_qos)

    player = start_player(str(bag), "--clock", "50", "--wait-for-subscribers", "--delay", "1",
                          "--topics-config", str(reliable))  # fmt: skip
    rc, out, err = finish(player)
    assert rc == 0, err
    assert "done: played 331 messages on 4 topic(s)" in out and "Traceback" not in err

    def played(received: list[Any]) -> int:
        return sum(x.topic != "/clock" for x in received)

    assert ros_listener.wait_for(lambda r: played(r) >= len(want)), f"{played(ros_listener.received)} of {len(want)}"

    got = [r for r in ros_listener.received if r.topic != "/clock"]
    for role in roles:  # each topic: every message, its recorded bytes, in order
        topic = reg[role].name
        assert [r.data for r in got if r.topic == topic] == [w[2] for w in want if w[0] == topic], topic
    for topic in {reg[r].name for r in ("camera", "imu", "odometry")}:
        assert_recorded_timing([r for r in got if r.topic == topic], [w for w in want if w[0] == topic], 1.0)
    assert_recorded_timing(got, want, 1.0)  # across topics too: one timeline

    store = typestore_for("jazzy")
    clock = [store.deserialize_cdr(r.data, "rosgraph_msgs/msg/Clock").clock for r in ros_listener.on("/clock")]
    clock_ns = [c.sec * 10**9 + c.nanosec for c in clock]
    assert clock_ns == sorted(clock_ns), "bag time never runs backwards within one pass"
    assert want[0][1] <= clock_ns[0] and clock_ns[-1] <= want[-1][1]
    assert len(clock_ns) >= 0.5 * 50 * 3.0, f"{len(clock_ns)} /clock messages in a 3 s bag at 50 Hz"


def test_a_real_rosbag2_recording_at_rate_2_from_an_offset(ros_listener: Any, conformance_dir: Path) -> None:
    """The talker bag rosbag2 recorded (std_msgs/String at 2 Hz): --rate 2 plays it in half the recorded time."""
    bag = conformance_dir / "mcap" / "talker"
    with open_bag(bag) as b:
        start = b.info.start_ns
    offset_s = 1.75
    want = [m for m in recorded(bag, ["/topic"]) if m[1] >= start + offset_s * 1e9]
    assert len(want) == 6
    subscribe_like_the_nodes(
        ros_listener,
        [
            (
                "/topic",
                "std_msgs/msg/String",
                QosSpec(load_registry(config_dir() / "topics.yaml")["command"].qos.profile, 10),
            )
        ],
    )
    player = start_player(
        str(bag), "--rate", "2", "--start-offset", str(offset_s), "--topics", "/topic", "--wait-for-subscribers"
    )
    rc, _out, err = finish(player)
    assert rc == 0, err
    assert "qos: reliable, volatile, depth 10 (bag)" in err  # /topic is not in the registry: the recorded QoS
    assert ros_listener.wait_for(lambda r: len(r) >= len(want))
    got = ros_listener.on("/topic")
    assert [r.data for r in got] == [w[2] for w in want]
    assert_recorded_timing(got, want, 2.0)
    span, recorded_span = (got[-1].t_ns - got[0].t_ns) / 1e9, (want[-1][1] - want[0][1]) / 1e9
    assert abs(span - recorded_span / 2) <= TIMING_TOLERANCE_S, (span, recorded_span)


@pytest.mark.parametrize(("signum", "code"), [(signal.SIGINT, 130), (signal.SIGTERM, 0)])
def test_a_signal_stops_a_looping_player_cleanly(
    ros_listener: Any, conformance_dir: Path, signum: int, code: int
) -> None:
    bag = conformance_dir / "mcap" / "talker"
    subscribe_like_the_nodes(
        ros_listener,
        [
            (
                "/topic",
                "std_msgs/msg/String",
                QosSpec(load_registry(config_dir() / "topics.yaml")["command"].qos.profile, 10),
            )
        ],
    )
    player = start_player(str(bag), "--loop", "--rate", "4", "--topics", "/topic", "--wait-for-subscribers")
    try:
        assert ros_listener.wait_for(lambda r: len(r) >= 12), "the second pass never started"  # 10 per pass
        player.send_signal(signum)
    finally:
        rc, out, err = finish(player)
    assert rc == code, err
    assert "Traceback" not in err and f"stopped by {signal.Signals(signum).name}" in out


def test_a_type_without_its_message_package_is_one_line_exit_2(ros_graph: Any, conformance_dir: Path) -> None:
    rc, _out, err = finish(start_player(str(conformance_dir / "mcap" / "cdr_test")))
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("roadloop: error: /array_topic (test_msgs/msg/Arrays): "), err
    assert "test_msgs is not installed" in lines[0] and "--topics" in lines[0]
