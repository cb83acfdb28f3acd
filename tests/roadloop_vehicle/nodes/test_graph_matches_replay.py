"""One wiring: a bag through the two node processes on a real DDS graph commands exactly what `roadloop replay` does.

The graph: drive_node and safety_node as their console scripts with `use_sim_time`, fed the bag in
lockstep (`roadloop_sim.over_ros.bag_lockstep`): /clock stepped to each message group's receive stamp,
the group's recorded bytes published, the command of each frame it completes awaited, and where the
safety watchdog stops (the camera silent) /clock held at the slot until the stop came -- so the safety
ramp, the staleness and the watchdog run on the bag's clock as replay's do, however loaded the machine.
The listener records /control/command and the drive frames. Replay: the `roadloop replay` command on the
same bag and params. Both run the same drive and safety stages, split at the same bytes, so the commands
must be equal bit for bit -- stamps, steering, speed, acceleration, jerk -- on the fault paths too: the
camera stopping (watchdog stop, recovery), a model swap to a model whose output is NaN (NaN fault,
rollback), an out-of-range target speed.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import warnings
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pytest
import yaml

from roadloop_core.bag import BagWriter, open_bag
from roadloop_core.config import config_dir
from roadloop_vehicle.frame import decode_frame
from roadloop_vehicle.params import load_vehicle_params
from roadloop_vehicle.pipeline import load_observation_spec
from tests.roadloop_vehicle.nodes.test_node_processes import (
    REG,
    ROADLOOP,
    STORE,
    NodeProcess,
    _model_manager,
    listen,
    stamp_ns,
    until,
)
from tests.roadloop_vehicle.nodes.test_node_processes import params_file as node_params

if TYPE_CHECKING:
    from roadloop_sim.over_ros.bag_lockstep import LockstepStep

# the lockstep feed is the simulator package's (absent, like the ROS wheels, in `make pytest-numpy1`)
pytestmark = pytest.mark.needs("rclpy", "ackermann_msgs", "roadloop_sim")

SIM_TIME = ("-p", "use_sim_time:=true")
Cmd = tuple[int, float, float, float, float, float]


def params_file(tmp_path: Path, drive: dict[str, Any]) -> Path:
    """config/vehicle.yaml with `drive` changes, its shared files named absolutely: the nodes resolve relative
    paths against the config folder, replay against the params file's folder, and this copy lives elsewhere."""
    path = node_params(tmp_path, drive=drive)
    doc = yaml.safe_load(path.read_text())
    shared = doc["/**"]["ros__parameters"]
    for key in ("topics_config", "observation_config"):
        shared[key] = str(config_dir() / shared[key])
    path.write_text(yaml.safe_dump(doc))
    return path


def command_tuple(msg: Any) -> Cmd:
    d = msg.drive
    return (stamp_ns(msg), d.steering_angle, d.speed, d.acceleration, d.jerk, d.steering_angle_velocity)


def replayed(bag: Path, params: Path, bundle: Path, key: Path, out: Path, *swaps: str) -> tuple[list[Cmd], Any]:
    """`roadloop replay`'s commands and stats."""
    args = [ROADLOOP, "replay", str(bag), "--bundle", str(bundle), "--public-key", str(key), "--params", str(params)]
    args += ["--out", str(out), "--stats", str(out.with_suffix(".json"))]
    for s in swaps:
        args += ["--swap", s]
    res = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    with open_bag(out) as b:
        cmds = [command_tuple(b.decode(r)) for r in b.messages([REG["command"].name])]
    return cmds, json.loads(out.with_suffix(".json").read_text())


class Graph:
    """drive_node + safety_node on sim time, fed in lockstep (`BagLockstep`), and what they publish."""

    def __init__(self, nodes: list[NodeProcess], listener: Any, tmp_path: Path, params: Path) -> None:
        from roadloop_sim.over_ros.bag_lockstep import BagLockstep
        from roadloop_sim.over_ros.driver import expected_readers
        from roadloop_sim.over_ros.link import CLOCK_TOPIC, RosLink
        from roadloop_sim.over_ros.lockstep import CommandBox

        self.listener = listener
        self.params = load_vehicle_params(params)
        listen(listener, "command", "command_raw")
        self.drive = NodeProcess("drive_node", params, tmp_path, *SIM_TIME)
        self.safety = NodeProcess("safety_node", params, tmp_path, *SIM_TIME)
        nodes += [self.drive, self.safety]
        assert until(lambda: "model loaded" in self.drive.stderr), self.drive.stderr
        observation = load_observation_spec(self.params)
        readers = {REG[role].name: n for role, n in expected_readers(observation, self.params, REG).items()}
        self.box = CommandBox()
        self.link = RosLink(REG, self.box, list(expected_readers(observation, self.params, REG)), "roadloop_test_feed")
        # every reader matched before the first message (a best-effort sensor topic drops what no reader matched
        # yet), /clock's too: a node that misses the first /clock would time the first messages at 0
        missing = self.link.wait_matched({**readers, CLOCK_TOPIC: 2}, 120.0, lambda: self.alive)
        if missing:
            self.link.close()
            raise AssertionError(f"not matched: {missing}: {self.drive.stderr[-2000:]} {self.safety.stderr[-2000:]}")
        # ... and the listener's: a reliable, volatile reader gets nothing published before it matched
        ours = (REG["command"].name, REG["command_raw"].name)
        watched = [sub for sub in listener.node.subscriptions if sub.topic_name in ours]
        assert until(lambda: all(sub.get_publisher_count() > 0 for sub in watched)), self.safety.stderr
        self.lockstep = BagLockstep(self.link, self.box, deadline_s=120.0, check=self.check)
        self.awaited: list[int] = []

    @property
    def alive(self) -> bool:
        return self.drive.proc.poll() is None and self.safety.proc.poll() is None

    def check(self) -> None:
        assert self.alive, f"a node died: {self.drive.stderr[-2000:]} {self.safety.stderr[-2000:]}"

    def close(self) -> None:
        self.link.close()

    def plan(self, bag: Path) -> list[LockstepStep]:
        from roadloop_sim.over_ros.bag_lockstep import plan_bag

        return plan_bag(bag, self.params)

    def play(self, steps: list[LockstepStep]) -> None:
        self.lockstep.play(steps)
        self.awaited += [s for step in steps for s in step.awaits]

    def frames(self) -> list[Any]:
        return [decode_frame(STORE.deserialize_cdr(r.data, REG["command_raw"].type))
                for r in self.listener.on(REG["command_raw"].name)]  # fmt: skip

    def commands(self) -> list[Cmd]:
        """Every command, once the listener has the last one the lockstep waited for (reliable, in order)."""
        topic, last = REG["command"].name, self.awaited[-1]

        def arrived(_: Any) -> bool:
            return any(stamp_ns(STORE.deserialize_cdr(r.data, REG["command"].type)) == last
                       for r in self.listener.on(topic)[-50:])  # fmt: skip

        assert self.listener.wait_for(arrived), f"the listener missed the last command: {self.safety.stderr[-2000:]}"
        return [command_tuple(STORE.deserialize_cdr(r.data, REG["command"].type)) for r in self.listener.on(topic)]


def write_bag(path: Path, msgs: list[tuple[str, int, Any]]) -> Path:
    with BagWriter(path, distro=REG.typestore) as w:
        for role in ("camera", "imu", "odometry", "route"):
            w.add_topic(REG[role].name, REG[role].type, REG[role].qos)
        for topic, ts, msg in msgs:
            w.write_msg(topic, ts, msg)
    return path


def drive(fx: ModuleType, **kwargs: Any) -> list[tuple[str, int, Any]]:
    """The fixtures' straight drive, its camera starting after 0.5 s: on the graph the latched route and the
    first IMU and odometry messages travel on other topics than the camera, so a camera frame at the very
    start may reach drive_node before them (a frame replay has and the graph does not)."""
    msgs = fx.drive_messages(REG, **kwargs)
    t0 = msgs[0][1]
    return [m for m in msgs if m[0] != REG["camera"].name or m[1] - t0 >= 500_000_000]


def assert_same(graph: list[Cmd], replay: list[Cmd]) -> None:
    """Equal, bit for bit; on a difference, the first ones with their bag times."""
    if graph == replay:
        return
    t0 = min(c[0] for c in graph + replay)
    diff = [(i, a, b) for i, (a, b) in enumerate(zip(graph, replay, strict=False)) if a != b][:5]
    shown = [(i, round((a[0] - t0) / 1e9, 3), a[1:], round((b[0] - t0) / 1e9, 3), b[1:]) for i, a, b in diff]
    raise AssertionError(f"graph {len(graph)} commands, replay {len(replay)}; first differences {shown}")


@pytest.fixture
def graph(ros_graph: Any, ros_listener: Any, tmp_path: Path) -> Iterator[Any]:
    """`graph(params)` starts the two nodes and the lockstep feed; both end with the test."""
    started: list[NodeProcess] = []
    graphs: list[Graph] = []

    def start(params: Path) -> Graph:
        graphs.append(Graph(started, ros_listener, tmp_path, params))
        return graphs[-1]

    yield start
    for g in graphs:
        g.close()
    for n in started:
        try:
            n.stop()
        except subprocess.TimeoutExpired:  # killed by then; a clean exit on SIGTERM is test_node_processes' test
            warnings.warn(f"{n.name} did not exit within 60 s of SIGTERM (killed): {n.stderr[-500:]}", stacklevel=1)


def test_camera_stop_watchdog_and_recovery_match_replay(
    graph: Any, tmp_path: Path, fx: ModuleType, keypair: tuple[Path, Path], bundle: Path
) -> None:
    bag = write_bag(tmp_path / "drive", drive(fx, seconds=4.5, camera_gap=(1.5, 3.0)))
    params = params_file(tmp_path, {"bundle": str(bundle), "public_key": str(keypair[1])})
    replay, stats = replayed(bag, params, bundle, keypair[1], tmp_path / "replay")
    assert stats["watchdog_ticks"] >= 10 and {"stale:camera", "no_command"} <= set(stats["faults"])
    assert stats["states"].get("recovering", 0) >= 5 and stats["states"]["active"] >= 10  # stopped, then drove again

    g = graph(params)
    steps = g.plan(bag)
    assert sum(1 for s in steps if s.stop) == stats["watchdog_ticks"]  # the lockstep waits for every stop replay made
    g.play(steps)
    assert_same(g.commands(), replay)


def test_model_swap_to_a_nan_model_and_its_rollback_match_replay(
    graph: Any, tmp_path: Path, fx: ModuleType, keypair: tuple[Path, Path]
) -> None:
    """`current` switched mid-drive to a model whose waypoints are NaN once the car moves (it passes the warm-up
    at rest, as a model that fails on real inputs only would): it serves one frame (a NaN fault, a
    controlled stop), is rolled back to the previous model, and the car recovers; replay reproduces the swap at the
    frame the car made it (`--swap`), and every command matches. The lockstep pauses after the 12th frame
    until drive_node has the new model, so the swap falls at the same frame on any machine."""
    models = tmp_path / "MODELS"
    (models / "versions").mkdir(parents=True)
    good = fx.make_bundle(models / "versions" / "tiny-v1", keypair[0])
    bad = fx.make_bundle(models / "versions" / "tiny-v2", keypair[0], version=2, nan_when_moving=True)
    (models / "current").symlink_to(Path("versions") / "tiny-v1")
    bag = write_bag(tmp_path / "drive", drive(fx, seconds=5.0))
    manager = {**_model_manager(), "models_dir": str(models), "poll_period_s": 0.1}
    params = params_file(tmp_path, {"bundle": "", "public_key": str(keypair[1]), "model_manager": manager})

    g = graph(params)
    steps = g.plan(bag)
    frames = [(i, stamp) for i, s in enumerate(steps) if not s.stop for stamp in s.awaits]  # (step, frame stamp)
    pause = frames[11][0] + 1
    g.play(steps[:pause])
    (models / ".next").symlink_to(Path("versions") / "tiny-v2")
    os.replace(models / ".next", models / "current")
    assert until(lambda: "model loaded tiny-v2" in g.drive.stderr), g.drive.stderr
    g.play(steps[pause:])
    cmds = g.commands()
    served = [(f.stamp_ns, f.model) for f in g.frames()]
    by_v2 = [s for s, m in served if m == "tiny-v2"]
    assert by_v2 == [frames[12][1]], f"tiny-v2 should serve the 13th frame only: {served}"
    assert served[-1][1] == "tiny-v1" and "rolled_back tiny-v2" in g.drive.stderr

    with open_bag(bag) as b:
        start = b.info.start_ns
    at = (by_v2[0] - start) / 1e9 - 0.05  # between the frame before and the swapped one
    replay, stats = replayed(bag, params, good, keypair[1], tmp_path / "replay", f"{at:.3f}={bad}")
    assert stats["models"] == ["tiny-v1", "tiny-v2"] and "nan_output" in stats["faults"]
    assert_same(cmds, replay)


def test_out_of_range_target_speed_matches_replay(
    graph: Any, tmp_path: Path, fx: ModuleType, keypair: tuple[Path, Path], bundle: Path
) -> None:
    """Odometry says 85 m/s for a second: the tiny policy's target (0.5 v + 5 = 47.5 m/s) is above 1.5 x the vehicle's
    30 m/s, an implausible value the supervisor stops on (the controller alone would clamp it to 30); then it
    recovers. The car judges the policy's target speed as replay does."""
    msgs = drive(fx, seconds=5.0)
    t0 = msgs[0][1]
    for i, (topic, ts, msg) in enumerate(msgs):
        if topic == REG["odometry"].name and 2.0 <= (ts - t0) / 1e9 < 3.0:
            twist = dataclasses.replace(msg.twist.twist, linear=dataclasses.replace(msg.twist.twist.linear, x=85.0))
            msgs[i] = (topic, ts, dataclasses.replace(msg, twist=dataclasses.replace(msg.twist, twist=twist)))
    bag = write_bag(tmp_path / "drive", msgs)
    params = params_file(tmp_path, {"bundle": str(bundle), "public_key": str(keypair[1])})
    replay, stats = replayed(bag, params, bundle, keypair[1], tmp_path / "replay")
    assert "implausible_value" in stats["faults"] and stats["states"]["active"] >= 10

    g = graph(params)
    g.play(g.plan(bag))
    assert_same(g.commands(), replay)
