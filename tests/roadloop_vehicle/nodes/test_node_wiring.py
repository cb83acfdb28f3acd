"""drive_node + safety_node wiring, run through an in-process bus implementing the NodeIO protocol.

The bus delivers the serialized bytes each publisher produces to every subscriber of the topic,
deterministically and without DDS timing, with parameters taken from config/vehicle.yaml exactly as
`ros2 run --params-file` would: the node's section plus the `/**` section, nested keys as dotted
names, each declared parameter taking the file's value. The split two-process setup must command
the same as the inline replay Pipeline. RosNode, the rclpy side of NodeIO, runs over real DDS in
tests/roadloop_vehicle/ros/.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections import defaultdict
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any, TypeVar

import pytest

from roadloop_core.bag import open_bag
from roadloop_core.config import config_dir
from roadloop_core.errors import ConfigError
from roadloop_core.param_schema import WILDCARD, build_params, node_sections
from roadloop_core.registry import TopicRegistry, load_registry
from roadloop_core.typesys import typestore_for
from roadloop_vehicle.frame import FRAME_TYPE, decode_frame
from roadloop_vehicle.nodes.drive_node import wire_drive
from roadloop_vehicle.nodes.safety_node import wire_safety
from roadloop_vehicle.params import load_vehicle_params
from roadloop_vehicle.replay import replay_bag
from roadloop_vehicle.ros.params import declarations

VEHICLE = load_vehicle_params(config_dir() / "vehicle.yaml")  # what the car runs on

T = TypeVar("T")


class Bus:
    def __init__(self) -> None:
        self.subs: dict[str, list[Callable[[bytes, int], None]]] = defaultdict(list)
        self.log: dict[str, list[bytes]] = defaultdict(list)
        self.timers: list[list[Any]] = []  # [period_ns, next_ns, callback]
        self.now = 0  # monotonic time: timers run on it
        self.wall_offset = 0  # the node clock is now + wall_offset (an NTP/GPS correction steps it)

    def publish(self, topic: str, data: bytes) -> None:
        self.log[topic].append(data)
        for cb in list(self.subs[topic]):
            cb(data, self.now + self.wall_offset)

    def advance(self, t_ns: int) -> None:
        for timer in sorted(self.timers, key=lambda t: t[1]):
            while timer[1] <= t_ns:
                self.now = timer[1]
                timer[1] += timer[0]
                timer[2]()
        self.now = t_ns


class BusNode:
    """NodeIO over the Bus (what RosNode does over rclpy)."""

    def __init__(self, bus: Bus, name: str, overrides: dict[str, Any]) -> None:
        self.bus, self.name = bus, name
        sections = node_sections(config_dir() / "vehicle.yaml")
        self.own = {**sections[name], **overrides}
        self.shared = sections.get(WILDCARD, {})
        self.registry: TopicRegistry | None = None
        self.lines: list[str] = []

    def parameters(self, cls: type[T]) -> T:
        declared = [d.name for d in declarations(cls)]
        undeclared = set(self.own) - set(declared)
        assert not undeclared, f"params file sets undeclared parameters {undeclared}"
        given = {**self.shared, **self.own}
        return build_params(cls, {n: given[n] for n in declared if n in given}, self.name)

    def use_registry(self, registry: TopicRegistry) -> None:
        self.registry = registry
        self.store = typestore_for(registry.typestore)

    def subscribe(self, role: str, callback: Callable[[bytes, int], None]) -> None:
        assert self.registry is not None
        self.bus.subs[self.registry[role].name].append(callback)

    def publisher(self, role: str) -> Callable[[Any], None]:
        assert self.registry is not None
        spec = self.registry[role]
        return lambda msg: self.bus.publish(spec.name, bytes(self.store.serialize_cdr(msg, spec.type)))

    def timer(self, period_s: float, callback: Callable[[], None], *, steady: bool = False) -> Any:
        period = int(period_s * 1e9)
        self.bus.timers.append([period, self.bus.now + period, callback])
        return None

    def now_ns(self) -> int:
        return self.bus.now + self.bus.wall_offset

    def monotonic_ns(self) -> int:
        return self.bus.now

    def info(self, text: str) -> None:
        self.lines.append(text)

    warn = error = info


def drive_through_nodes(bag: Path, bundle: Path, public_key: Path) -> Bus:
    bus = Bus()
    with open_bag(bag) as b:
        msgs = list(b.messages())
    bus.now = msgs[0].timestamp_ns
    drive = wire_drive(
        BusNode(bus, "drive_node", {"bundle": str(bundle), "public_key": str(public_key)}),
        config_dir(),
        start_loader=False,
    )
    drive.loader.run()  # the loader thread's work, done before the first message for a deterministic test
    wire_safety(BusNode(bus, "safety_node", {}), config_dir())
    for raw in msgs:
        bus.advance(raw.timestamp_ns)
        bus.publish(raw.topic, bytes(raw.data))
    return bus


def test_split_nodes_command_what_the_replay_pipeline_commands(
    drive_bag: Path, bundle: Path, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    bus = drive_through_nodes(drive_bag, bundle, keypair[1])
    reg = load_registry(config_dir() / "topics.yaml")
    store = typestore_for(reg.typestore)
    node_cmds = [store.deserialize_cdr(d, reg["command"].type) for d in bus.log[reg["command"].name]]
    raw_cmds = bus.log[reg["command_raw"].name]
    assert len(raw_cmds) == 30 and len(bus.log[reg["trajectory"].name]) == 30
    replay_bag(drive_bag, tmp_path / "out", bundle, params=VEHICLE, public_key=keypair[1])
    with open_bag(tmp_path / "out") as b:
        replay_cmds = [b.decode(r) for r in b.messages([reg["command"].name])]
    # watchdog ticks only add stop commands when commands are overdue: none in a healthy drive
    assert len(node_cmds) == len(replay_cmds) == 30
    for a, r in zip(node_cmds, replay_cmds, strict=True):
        assert a.header.stamp == r.header.stamp
        assert (a.drive.steering_angle, a.drive.speed, a.drive.acceleration) == pytest.approx(
            (r.drive.steering_angle, r.drive.speed, r.drive.acceleration), abs=1e-6
        )
    diags = [store.deserialize_cdr(d, reg["diagnostics"].type) for d in bus.log[reg["diagnostics"].name]]
    names = {s.name for d in diags for s in d.status}
    assert names == {"roadloop/safety", "roadloop/model"}  # safety from safety_node, model from drive_node


def test_safety_node_stops_the_car_when_drive_node_goes_silent(
    drive_bag: Path, bundle: Path, keypair: tuple[Path, Path]
) -> None:
    bus = drive_through_nodes(drive_bag, bundle, keypair[1])
    reg = load_registry(config_dir() / "topics.yaml")
    store = typestore_for(reg.typestore)
    before = len(bus.log[reg["command"].name])
    bus.advance(bus.now + 2_000_000_000)  # two seconds without any message
    cmds = [store.deserialize_cdr(d, reg["command"].type) for d in bus.log[reg["command"].name][before:]]
    assert len(cmds) >= 15  # the 10 Hz watchdog keeps commanding
    speeds = [c.drive.speed for c in cmds]
    assert speeds == sorted(speeds, reverse=True) and speeds[-1] < speeds[0] - 3.0  # braking at ~3 m/s²
    assert cmds[-1].drive.acceleration > 0  # a magnitude in ackermann_msgs: the limit to reach `speed` with
    diags = [store.deserialize_cdr(d, reg["diagnostics"].type) for d in bus.log[reg["diagnostics"].name]]
    last = {s.name: s for s in diags[-1].status}["roadloop/safety"]
    assert last.level == 2 and "stale:command_raw" in last.message


@pytest.mark.parametrize(("step_s", "after"), [(-10.0, "last"), (10.0, "half")])
def test_a_wall_clock_step_neither_delays_nor_fakes_the_watchdog(
    drive_bag: Path, bundle: Path, keypair: tuple[Path, Path], step_s: float, after: str
) -> None:
    """The probe's case: the node clock stepped back 10 s (an NTP/GPS correction) right after the last command
    took 10.4 s, not 0.4 s, to stop the car. Staleness runs on monotonic time, so a step either way changes
    nothing: a backward one delays no stop, a forward one mid-drive fakes no stop while commands still come."""
    reg = load_registry(config_dir() / "topics.yaml")
    store = typestore_for(reg.typestore)
    bus = Bus()
    with open_bag(drive_bag) as b:
        msgs = list(b.messages())
    bus.now = msgs[0].timestamp_ns
    drive = wire_drive(
        BusNode(bus, "drive_node", {"bundle": str(bundle), "public_key": str(keypair[1])}),
        config_dir(),
        start_loader=False,
    )
    drive.loader.run()
    wire_safety(BusNode(bus, "safety_node", {}), config_dir())
    step_at = len(msgs) if after == "last" else len(msgs) // 2
    for i, raw in enumerate(msgs):
        if i == step_at:
            bus.wall_offset += int(step_s * 1e9)
        bus.advance(raw.timestamp_ns)
        bus.publish(raw.topic, bytes(raw.data))
    if step_at == len(msgs):
        bus.wall_offset += int(step_s * 1e9)

    def safety_levels(frm: int) -> list[int]:
        diags = [store.deserialize_cdr(d, reg["diagnostics"].type) for d in bus.log[reg["diagnostics"].name][frm:]]
        return [s.level for d in diags for s in d.status if s.name == "roadloop/safety"]

    assert safety_levels(0) and max(safety_levels(0)) == 0, "a healthy drive stays active through the step"
    cmds_before, diags_before = len(bus.log[reg["command"].name]), len(bus.log[reg["diagnostics"].name])
    stale_s = reg["command_raw"].stale_after_s(reg.stale_factor)
    bus.advance(bus.now + int((stale_s + 0.5) * 1e9))  # the drive node goes silent
    stops = bus.log[reg["command"].name][cmds_before:]
    assert stops, f"no watchdog stop within {stale_s + 0.5:.1f} s of the last command after a {step_s:+.0f} s step"
    assert 2 in safety_levels(diags_before)
    stamps = [store.deserialize_cdr(d, reg["command"].type).header.stamp for d in stops]
    expected = (bus.now + bus.wall_offset) / 1e9
    assert abs(stamps[-1].sec + stamps[-1].nanosec / 1e9 - expected) < 0.2, "stamps stay node-clock time"


@pytest.mark.parametrize(
    ("given", "message"),
    [
        ({"safety.recovery_frames": "many"}, r"^safety_node\.safety\.recovery_frames: 'many' is not an integer$"),
        ({"diagnostics_period_s": float("nan")}, r"^safety_node\.diagnostics_period_s: \.nan is not finite$"),
        ({"safety.stop_decel_mps2": 9.0}, r"^safety_node: safety\.stop_decel_mps2 9 exceeds vehicle_limits"),
    ],
)
def test_invalid_parameter_is_one_clear_error(given: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        wire_safety(BusNode(Bus(), "safety_node", given), config_dir())


def test_drive_node_without_a_model_sends_frames_saying_so_and_safety_stops_at_once(
    drive_bag: Path, fx: ModuleType, tmp_path: Path
) -> None:
    """No model: every frame still reaches safety_node, without a command and with model_available false, so
    the supervisor faults model_unavailable at the frame instead of waiting for command_raw to go stale."""
    bus = Bus()
    with open_bag(drive_bag) as b:
        msgs = list(b.messages())
    bus.now = msgs[0].timestamp_ns
    _, pub = fx.keys(tmp_path / "k")
    node = wire_drive(
        BusNode(bus, "drive_node", {"model_manager.models_dir": str(tmp_path / "none"), "public_key": str(pub)}),
        config_dir(),
        start_loader=False,
    )
    wire_safety(BusNode(bus, "safety_node", {}), config_dir())
    node.core.manager.poll_current()  # nothing installed
    for raw in msgs:
        bus.advance(raw.timestamp_ns)
        bus.publish(raw.topic, bytes(raw.data))
    store = typestore_for("jazzy")
    frames = [decode_frame(store.deserialize_cdr(d, FRAME_TYPE)) for d in bus.log["/control/command_raw"]]
    assert len(frames) == 30 and not bus.log["/planning/trajectory"]
    assert all(f.command is None and not f.model_available and f.model is None for f in frames)
    cmds = [store.deserialize_cdr(d, "ackermann_msgs/msg/AckermannDriveStamped") for d in bus.log["/control/command"]]
    assert cmds and all(c.drive.speed == 0.0 for c in cmds)
    diags = [store.deserialize_cdr(d, "diagnostic_msgs/msg/DiagnosticArray") for d in bus.log["/diagnostics"]]
    model = [s for d in diags for s in d.status if s.name == "roadloop/model"]
    assert model, "the model status goes out on every poll tick"
    assert (model[-1].level, model[-1].message) == (1, "no model loaded")
    safety = [s for d in diags for s in d.status if s.name == "roadloop/safety"]
    assert safety and all("model_unavailable" in s.message for s in safety[1:])


@pytest.mark.needs("rclpy")  # rclpy installed, its libraries not found
@pytest.mark.parametrize("node", ["drive_node", "safety_node"])
def test_entry_point_without_ros_libraries_is_one_line_exit_2(node: str) -> None:
    """The console script where rclpy's C extension cannot load its libraries (ROS 2 not sourced, or the
    venv's LD_LIBRARY_PATH bootstrap skipped): one line naming the cause, exit 2, no traceback."""
    script = Path(sys.executable).with_name(node)
    env = {k: v for k, v in os.environ.items() if k != "LD_LIBRARY_PATH"}
    env["_ROS_WHEELS_BOOTSTRAP_COMPLETE"] = "1"  # tells ros-wheels-bootstrapper the library path is already set
    res = subprocess.run([str(script)], env=env, capture_output=True, text=True, timeout=120, check=False)
    assert res.returncode == 2, res.stderr
    err = res.stderr.strip()
    assert err.startswith(f"{node}: ROS 2 (rclpy) cannot run here (") and "\n" not in err, err
    assert "cannot open shared object file" in err and "Traceback" not in err


def test_the_loader_thread_survives_a_broken_bundle_and_takes_the_next(
    bundle: Path, fx: ModuleType, keypair: tuple[Path, Path], tmp_path: Path
) -> None:
    """Issue 13: policy.onnx replaced by a folder killed the loader thread silently (no refused event, no
    later update). Now the refusal is on /diagnostics and the next release is loaded."""
    import os
    import shutil
    import threading
    import time

    models = tmp_path / "MODELS"
    (models / "versions").mkdir(parents=True)
    shutil.copytree(bundle, models / "versions" / "tiny-v1")
    broken = shutil.copytree(bundle, models / "versions" / "tiny-v2")
    (broken / "policy.onnx").unlink()
    (broken / "policy.onnx").mkdir()

    def point_at(name: str) -> None:
        (models / ".tmp").symlink_to(Path("versions") / name)
        os.replace(models / ".tmp", models / "current")

    def wait_for_event(kind: str, label: str) -> None:
        deadline = time.monotonic() + 120
        while not any((e.kind, e.label) == (kind, label) for e in list(manager.events)):
            assert node.loader.is_alive(), "the loader thread died"
            assert time.monotonic() < deadline, f"no {kind} {label}: {manager.events}"
            time.sleep(0.02)

    point_at("tiny-v1")
    bus = Bus()
    overrides = {"model_manager.models_dir": str(models), "model_manager.poll_period_s": 0.05,
                 "public_key": str(keypair[1])}  # fmt: skip
    node = wire_drive(BusNode(bus, "drive_node", overrides), config_dir())
    manager = node.core.manager
    try:
        wait_for_event("loaded", "tiny-v1")
        point_at("tiny-v2")
        wait_for_event("refused", "tiny-v2")
        fx.make_bundle(models / "versions" / "tiny-v3", keypair[0], version=3)
        point_at("tiny-v3")
        wait_for_event("loaded", "tiny-v3")
        assert node.loader.is_alive() and threading.active_count() >= 2
    finally:
        node.stop.set()
        node.loader.join(timeout=60)
    bus.advance(bus.now + 10**9)  # the poll tick publishes the model status with what happened
    store = typestore_for("jazzy")
    diags = [store.deserialize_cdr(d, "diagnostic_msgs/msg/DiagnosticArray") for d in bus.log["/diagnostics"]]
    values = [kv.value for d in diags for s in d.status for kv in s.values]
    assert any(v.startswith("refused tiny-v2:") and "regular file" in v for v in values), values
