"""drive_node and safety_node as OS processes on a real ROS 2 graph (Fast DDS on loopback, this session's domain).

The nodes are their console scripts with `--ros-args --params-file` a copy of config/vehicle.yaml
(only the bundle, key and model folder changed); bags are fed by `roadloop bag play`; a plain rclpy
listener in the test process subscribes like the vehicle interface would. Waits are on events with
generous deadlines; rates are checked over many messages with wide bounds (a loaded 2-core machine
delays callbacks, but a timer that drops every other tick shows).
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
import yaml

from roadloop_core.config import config_dir
from roadloop_core.registry import QosSpec, load_registry
from roadloop_core.typesys import typestore_for

# Every test here runs the node processes, which need the ROS 2 wheels (absent in `make pytest-numpy1`).
pytestmark = pytest.mark.needs("rclpy", "ackermann_msgs")

REG = load_registry(config_dir() / "topics.yaml")
STORE = typestore_for(REG.typestore)
BIN = Path(sys.executable).parent
ROADLOOP = shutil.which("roadloop", path=str(BIN)) or "roadloop"
DEPTH = 1000  # the listener keeps everything: a slow callback must not cost a message
TICK_S = 1.0 / REG["command_raw"].rate_hz


class NodeProcess:
    """One node console script; stdout/stderr go to files (a full pipe must never block the node)."""

    def __init__(self, name: str, params: Path, log_dir: Path, *extra: str) -> None:
        self.name = name
        self.out = log_dir / f"{name}-{time.monotonic_ns()}.out"
        self.err = self.out.with_suffix(".err")
        with self.out.open("w") as out, self.err.open("w") as err:
            self.proc = subprocess.Popen(
                [str(BIN / name), "--ros-args", "--params-file", str(params), *extra], stdout=out, stderr=err
            )

    def stop(self, signum: int = signal.SIGTERM, timeout_s: float = 60.0) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signum)
        try:
            return self.proc.wait(timeout=timeout_s)
        finally:
            self.proc.kill()

    def wait(self, timeout_s: float = 120.0) -> int:
        try:
            return self.proc.wait(timeout=timeout_s)
        finally:
            self.proc.kill()

    @property
    def stderr(self) -> str:
        return self.err.read_text()


@pytest.fixture
def nodes(ros_graph: Any, tmp_path: Path) -> Iterator[list[NodeProcess]]:
    started: list[NodeProcess] = []
    yield started
    for n in started:
        n.stop(signal.SIGKILL)


def params_file(tmp_path: Path, *, drive: dict[str, Any] | None = None, safety: dict[str, Any] | None = None) -> Path:
    """config/vehicle.yaml with some `ros__parameters` replaced (nested keys as in the file)."""
    doc = yaml.safe_load((config_dir() / "vehicle.yaml").read_text())
    for section, changes in (("drive_node", drive), ("safety_node", safety)):
        doc[section]["ros__parameters"].update(changes or {})
    path = tmp_path / f"vehicle-{time.monotonic_ns()}.yaml"
    path.write_text(yaml.safe_dump(doc))
    return path


def listen(listener: Any, *roles: str) -> None:
    from roadloop_vehicle.ros.adapter import qos_profile
    from roadloop_vehicle.ros.interfaces import message_class

    for role in roles:
        spec = REG[role]
        listener.subscribe(spec.name, message_class(spec.type), qos_profile(QosSpec(spec.qos.profile, DEPTH)))


def decoded(listener: Any, role: str) -> list[tuple[int, Any]]:
    """(arrival monotonic ns, message) of everything received on `role`'s topic."""
    spec = REG[role]
    return [(r.t_ns, STORE.deserialize_cdr(r.data, spec.type)) for r in listener.on(spec.name)]


def safety_status(diag: Any) -> Any | None:
    return next((s for s in diag.status if s.name == "roadloop/safety"), None)


def until(done: Callable[[], bool], timeout_s: float = 120.0) -> bool:
    """Poll `done` (a node's log, say) until it holds or the generous deadline passes."""
    deadline = time.monotonic() + timeout_s
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
    return True


def stamp_ns(msg: Any) -> int:
    """A header's stamp, or a drive frame's (command_raw carries its stamp at the top level)."""
    stamp = msg.header.stamp if hasattr(msg, "header") else msg.stamp
    return int(stamp.sec) * 10**9 + int(stamp.nanosec)


def rate_hz(times_ns: list[int]) -> float:
    return (len(times_ns) - 1) / ((times_ns[-1] - times_ns[0]) / 1e9)


def play(bag: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [ROADLOOP, "bag", "play", str(bag), "--wait-for-subscribers", "--delay", "1", *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


# -- start-up and shutdown ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("node", "signum"),
    [("safety_node", signal.SIGTERM), ("safety_node", signal.SIGINT), ("drive_node", signal.SIGTERM)],
)
def test_a_signal_is_a_clean_exit_0_without_traceback(
    nodes: list[NodeProcess], ros_listener: Any, tmp_path: Path, keypair: tuple[Path, Path], node: str, signum: int
) -> None:
    params = params_file(
        tmp_path,
        drive={"public_key": str(keypair[1]), "model_manager": {**_model_manager(), "models_dir": str(tmp_path)}},
    )
    n = NodeProcess(node, params, tmp_path)
    nodes.append(n)
    topic = REG["diagnostics"].name
    assert ros_listener.wait_for_publishers([topic]), f"{node} never joined the graph: {n.stderr}"
    rc = n.stop(signum)
    assert rc == 0 and "Traceback" not in n.stderr, n.stderr


def _model_manager() -> dict[str, Any]:
    doc = yaml.safe_load((config_dir() / "vehicle.yaml").read_text())
    return dict(doc["drive_node"]["ros__parameters"]["model_manager"])


def test_safety_node_alone_commands_a_stop_at_its_rate_from_start(
    nodes: list[NodeProcess], ros_listener: Any, tmp_path: Path
) -> None:
    """drive_node never started: the actuators still get stop commands at 10 Hz and the reason on /diagnostics."""
    listen(ros_listener, "command", "diagnostics")
    nodes.append(NodeProcess("safety_node", params_file(tmp_path), tmp_path))
    assert ros_listener.wait_for(lambda r: len(ros_listener.on(REG["command"].name)) >= 31), nodes[0].stderr
    cmds = decoded(ros_listener, "command")
    assert all(c.drive.speed == 0.0 and c.drive.steering_angle == 0.0 for _, c in cmds)
    assert 8.0 <= rate_hz([t for t, _ in cmds]) <= 12.0, rate_hz([t for t, _ in cmds])
    statuses = [safety_status(d) for _, d in decoded(ros_listener, "diagnostics")]
    assert statuses and all(s is not None and "stale:command_raw" in s.message for s in statuses)
    assert statuses[0].message.startswith("controlled stop: ")


# -- parameters -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "value"),
    [("safety.recovery_frames", -5), ("safety.recovery_frames", "abc"), ("vehicle_limits.max_speed_mps", 2.0)],
)
def test_setting_a_parameter_through_the_service_is_refused(
    nodes: list[NodeProcess], ros_listener: Any, tmp_path: Path, name: str, value: Any
) -> None:
    """What `ros2 param set` does: rcl_interfaces/srv/SetParameters. The nodes read their parameters once."""
    from rcl_interfaces.srv import GetParameters, SetParameters
    from rclpy.parameter import Parameter

    nodes.append(NodeProcess("safety_node", params_file(tmp_path), tmp_path))
    node = ros_listener.node
    set_client = node.create_client(SetParameters, "/safety_node/set_parameters")
    get_client = node.create_client(GetParameters, "/safety_node/get_parameters")
    assert set_client.wait_for_service(timeout_sec=120.0), nodes[0].stderr
    assert get_client.wait_for_service(timeout_sec=120.0)
    before = _call(get_client, GetParameters.Request(names=[name])).values[0]

    req = SetParameters.Request(parameters=[Parameter(name, value=value).to_parameter_msg()])
    result = _call(set_client, req).results[0]
    assert not result.successful and result.reason, result
    after = _call(get_client, GetParameters.Request(names=[name])).values[0]
    assert after == before


def _call(client: Any, request: Any) -> Any:
    """The request's answer; sent again after 10 s without one. A service's response can be lost while its
    writer is not yet matched with this client's reader, which wait_for_service does not wait for (Fast DDS
    waits a bounded time for it: ros2/rmw_fastrtps#390); both requests here are idempotent."""
    deadline = time.monotonic() + 120.0
    while time.monotonic() < deadline:
        future = client.call_async(request)
        resend = min(deadline, time.monotonic() + 10.0)
        while not future.done() and time.monotonic() < resend:
            time.sleep(0.02)
        if future.done():
            return future.result()
        client.remove_pending_request(future)
    raise AssertionError(f"no answer from {client.srv_name} in 120 s")


@pytest.mark.parametrize(
    ("node", "drive", "safety", "unknown", "cls"),
    [
        ("drive_node", {"controler": {"kp": 0.8}}, None, "controler.kp", "DriveParams"),
        ("safety_node", None, {"safety": {"recovery_frams": 3}}, "safety.recovery_frams", "SafetyParams"),
    ],
)
def test_a_misspelled_parameter_key_is_refused_like_replay_refuses_it(
    ros_graph: Any, tmp_path: Path, node: str, drive: Any, safety: Any, unknown: str, cls: str
) -> None:
    params = params_file(tmp_path, drive=drive, safety=safety)
    n = NodeProcess(node, params, tmp_path)
    assert n.wait() == 2
    lines = n.stderr.strip().splitlines()
    assert lines == [f"{node}: error: {node}.{unknown}: not a parameter of {cls} (from the params file or -p)"], (
        n.stderr
    )
    assert "Traceback" not in n.stderr
    from roadloop_core.errors import ConfigError
    from roadloop_vehicle.params import load_vehicle_params

    with pytest.raises(ConfigError, match=f": {node}.{unknown}: not a parameter of {cls}$"):  # replay refuses it too
        load_vehicle_params(params)


def test_a_bad_ros_argument_is_one_line_exit_2(ros_graph: Any, tmp_path: Path) -> None:
    n = NodeProcess("safety_node", params_file(tmp_path), tmp_path, "--no-such-flag")
    assert n.wait() == 2
    assert n.stderr.strip().splitlines() == ["safety_node: error: bad ROS arguments: ['--no-such-flag']"], n.stderr


def test_a_missing_message_package_is_one_line_exit_2(ros_graph: Any, tmp_path: Path) -> None:
    topics = yaml.safe_load((config_dir() / "topics.yaml").read_text())
    topics["topics"]["odometry"]["type"] = "test_msgs/msg/Arrays"  # a real ROS 2 package, not installed here
    (tmp_path / "topics.yaml").write_text(yaml.safe_dump(topics))
    n = NodeProcess(
        "safety_node",
        params_file(tmp_path, safety={"topics_config": str(tmp_path / "topics.yaml")}),
        tmp_path,
    )
    assert n.wait() == 2
    lines = [ln for ln in n.stderr.strip().splitlines() if ln]
    assert len(lines) == 1 and "Traceback" not in n.stderr, n.stderr
    assert lines[0].startswith("safety_node: error: /localization/odometry (test_msgs/msg/Arrays): ")
    assert "test_msgs is not installed" in lines[0]


# -- a played bag through both nodes --------------------------------------------------------------


def test_played_bag_commands_at_the_policy_rate_then_a_killed_drive_node_is_a_10_hz_controlled_stop(
    nodes: list[NodeProcess],
    ros_listener: Any,
    tmp_path: Path,
    fx: ModuleType,
    keypair: tuple[Path, Path],
    bundle: Path,
) -> None:
    bag = fx.write_drive_bag(tmp_path / "drive", seconds=6.0)
    listen(ros_listener, "command", "command_raw", "diagnostics")
    params = params_file(tmp_path, drive={"bundle": str(bundle), "public_key": str(keypair[1])})
    drive = NodeProcess("drive_node", params, tmp_path)
    nodes += [drive, NodeProcess("safety_node", params, tmp_path)]

    assert until(lambda: "model loaded" in drive.stderr), drive.stderr
    res = play(bag, "--topics", ",".join(REG[r].name for r in ("camera", "imu", "odometry", "route")))
    assert res.returncode == 0, res.stderr
    assert ros_listener.wait_for(lambda r: len(ros_listener.on(REG["command_raw"].name)) >= 55), drive.stderr

    raw = decoded(ros_listener, "command_raw")
    assert 8.0 <= rate_hz([t for t, _ in raw]) <= 12.0  # the camera's 10 Hz: one command per frame
    frames = {stamp_ns(m) for _, m in raw}

    def gated_now() -> list[Any]:
        return [c for _, c in decoded(ros_listener, "command") if stamp_ns(c) in frames]

    # the safety node's commands of the latest frames may still be on their way: each frame gets one
    assert ros_listener.wait_for(lambda r: len(gated_now()) >= len(raw)), (len(gated_now()), len(raw))
    gated = gated_now()
    assert len(gated) == len(raw)
    lim = yaml.safe_load((config_dir() / "vehicle.yaml").read_text())["/**"]["ros__parameters"]["vehicle_limits"]
    for c in gated:  # sane: inside the vehicle's envelope, driving straight along the route at ~5-7.5 m/s
        assert abs(c.drive.steering_angle) <= lim["max_steering_rad"] and 0.0 <= c.drive.speed <= lim["max_speed_mps"]
    assert gated[-1].drive.speed > 4.0 and abs(gated[-1].drive.steering_angle) < 0.05

    n_before = len(ros_listener.on(REG["command"].name))
    drive.stop(signal.SIGKILL)
    assert ros_listener.wait_for(lambda r: len(ros_listener.on(REG["command"].name)) >= n_before + 31)
    stops = decoded(ros_listener, "command")[n_before:]
    assert 8.0 <= rate_hz([t for t, _ in stops]) <= 12.0, rate_hz([t for t, _ in stops])
    speeds = [c.drive.speed for _, c in stops]
    assert speeds == sorted(speeds, reverse=True) and speeds[-1] < speeds[0]
    last = safety_status(decoded(ros_listener, "diagnostics")[-1][1])
    assert last is not None and last.level == 2 and "stale:command_raw" in last.message


def test_camera_stopped_is_a_controlled_stop_within_the_deadline_with_the_reason_on_diagnostics(
    nodes: list[NodeProcess],
    ros_listener: Any,
    tmp_path: Path,
    fx: ModuleType,
    keypair: tuple[Path, Path],
    bundle: Path,
) -> None:
    bag = fx.write_drive_bag(tmp_path / "drive", seconds=5.0, camera_gap=(2.0, 5.0))
    listen(ros_listener, "camera", "command", "diagnostics")
    params = params_file(tmp_path, drive={"bundle": str(bundle), "public_key": str(keypair[1])})
    nodes += [NodeProcess("drive_node", params, tmp_path), NodeProcess("safety_node", params, tmp_path)]
    assert until(lambda: "model loaded" in nodes[0].stderr), nodes[0].stderr
    res = play(bag, "--topics", ",".join(REG[r].name for r in ("camera", "imu", "odometry", "route")))
    assert res.returncode == 0, res.stderr

    def stop_after_driving(_: Any) -> tuple[int, Any] | None:
        """The first safety status naming the stale camera after the supervisor was ACTIVE (the bag driving)."""
        active = False
        for t, d in decoded(ros_listener, "diagnostics"):
            s = safety_status(d)
            active = active or (s is not None and s.level == 0)
            if active and s is not None and "stale:camera" in s.message:
                return t, s
        return None

    assert ros_listener.wait_for(lambda _: stop_after_driving(_) is not None)
    first_stop, status = stop_after_driving(None)  # type: ignore[misc]
    last_camera = ros_listener.on(REG["camera"].name)[-1].t_ns
    deadline_s = REG["camera"].stale_after_s(REG.stale_factor) + TICK_S
    # the supervisor's deadline plus one watchdog period; 1 s more for a loaded machine's scheduling
    assert (first_stop - last_camera) / 1e9 <= deadline_s + 1.0, (first_stop - last_camera) / 1e9
    assert status.level == 2 and status.message.startswith("controlled stop: stale:camera"), status.message


def test_safety_node_killed_nothing_reaches_the_actuators_until_its_respawn_gates_again(
    nodes: list[NodeProcess],
    ros_listener: Any,
    tmp_path: Path,
    fx: ModuleType,
    keypair: tuple[Path, Path],
    bundle: Path,
) -> None:
    """The design: drive_node never publishes /control/command, so while the monitor is dead the vehicle
    interface gets no command at all (its own command timeout stops the car); vehicle.launch.py respawns
    safety_node (done here by hand, as launch would), which commands stops from its start and gates the
    drive commands again once frames are healthy."""
    bag = fx.write_drive_bag(tmp_path / "drive", seconds=20.0)
    listen(ros_listener, "command", "command_raw")
    params = params_file(tmp_path, drive={"bundle": str(bundle), "public_key": str(keypair[1])})
    drive, safety = NodeProcess("drive_node", params, tmp_path), NodeProcess("safety_node", params, tmp_path)
    nodes += [drive, safety]
    assert until(lambda: "model loaded" in drive.stderr), drive.stderr
    player = subprocess.Popen(
        [
            ROADLOOP,
            "bag",
            "play",
            str(bag),
            "--wait-for-subscribers",
            "--delay",
            "1",
            "--topics",
            ",".join(REG[r].name for r in ("camera", "imu", "odometry", "route")),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def gated_after(since: int) -> list[Any]:
            frames = {stamp_ns(m) for _, m in decoded(ros_listener, "command_raw")}
            return [c for t, c in decoded(ros_listener, "command") if t > since and stamp_ns(c) in frames]

        assert ros_listener.wait_for(lambda _: len(gated_after(0)) >= 10), safety.stderr
        safety.stop(signal.SIGKILL)
        killed = time.monotonic_ns()
        n_raw = len(ros_listener.on(REG["command_raw"].name))
        assert ros_listener.wait_for(lambda _: len(ros_listener.on(REG["command_raw"].name)) >= n_raw + 20)
        # drive_node kept driving, yet nothing went to the actuators: no one else publishes /control/command
        assert not [t for t, _ in decoded(ros_listener, "command") if t > killed + 200_000_000]

        respawned_at = time.monotonic_ns()
        nodes.append(NodeProcess("safety_node", params, tmp_path))
        assert ros_listener.wait_for(lambda _: len(gated_after(respawned_at)) >= 10), nodes[-1].stderr
    finally:
        player.kill()
        player.wait()
