"""RosDriver: `--driver bundle:PATH --over-ros`, the onboard node processes driving the simulator over DDS.

A Driver like the others (`roadloop_sim.protocol`), so `run_episode` and the scoring are the very
ones of the in-process `bundle:` driver; only the path of a command differs:

    simulator --(CDR bytes, registry QoS)--> drive_node --command_raw--> safety_node --/control/command--> simulator

Each episode: start drive_node and safety_node (use_sim_time), wait for every topic to match and, with
/clock moving from 1 s on (long before any episode), for the drive node's model. Before the first
frame the drive node completes, the car holds its speed, straight, as the in-process driver does, and
/clock stands still. At the first frame, a handshake: /clock at the safety watchdog's last slot before it, until the
safety node's watchdog (which commands stops from its start until a first command) answers with a
stop stamped at that slot. From then on each tick (see `lockstep`) sets /clock 1 ns before the tick,
publishes the period's messages and waits for the command of each frame they complete.

Why 1 ns before: a frame is judged at its stamp, and /clock must not yet have reached a time later
than it when its command is decided. The watchdog decides on a grid half a period off the sensor
stamps' grid (`safety.core.watchdog_slot_ns`), so a watchdog stop never carries a frame's stamp.
"""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.registry import QosProfile, TopicRegistry
from roadloop_sim.errors import DriverError
from roadloop_sim.over_ros.config import OverRosConfig
from roadloop_sim.over_ros.link import RosLink
from roadloop_sim.over_ros.lockstep import CommandBox, FramePredictor
from roadloop_sim.over_ros.nodes import MODEL_LOADED, NodeSet, episode_params
from roadloop_sim.protocol import Observation
from roadloop_sim.sensor_messages import MessageFactory
from roadloop_vehicle.params import VehicleParams
from roadloop_vehicle.safety.core import watchdog_slot_ns
from roadloop_vehicle.safety.supervisor import observed_roles

__all__ = ["RosDriver"]


def expected_readers(observation: ObservationSpec, params: VehicleParams, registry: TopicRegistry) -> dict[str, int]:
    """Role -> how many node subscriptions must match before the first message (a best-effort sensor topic
    drops what no reader matched yet): the drive node reads the observation's roles, the safety node
    monitors the model's inputs (all but the latched route) and its extra roles: those with a sensor or
    latched profile are sensors (the simulator's), those with the command profile what the drive node
    publishes to it."""
    counts = dict.fromkeys(observation.roles(onboard=True), 1)
    for role in observed_roles(observation):
        counts[role] += 1
    for role in params.safety.safety.extra_monitored_roles:
        if role in registry.topics and registry[role].qos.profile is not QosProfile.COMMAND:
            counts[role] = counts.get(role, 0) + 1
    return counts


JUST_BEFORE_NS = 1


class RosDriver:
    name = "bundle"
    wants_raw = True

    def __init__(
        self,
        bundle: Path,
        registry: TopicRegistry,
        *,
        params: VehicleParams,
        config: OverRosConfig,
        policy_rate_hz: int,
        log_dir: Path | None = None,
    ) -> None:
        if not (bundle / "manifest.json").is_file():
            raise DriverError(f"driver bundle:{bundle}: no manifest.json (not a model bundle)")
        self.bundle = bundle.resolve()
        self.registry = registry
        self.params = params
        self.config = config
        self.period_ns = round(1e9 / policy_rate_hz)
        self.name = f"bundle:{self.bundle.name}"
        self.factory = MessageFactory(registry.typestore)
        observation = ObservationSpec.from_config(params.path(params.drive.observation_config))
        self.inputs = expected_readers(observation, params, registry)
        self.predictor = FramePredictor(observation, registry)
        # the node logs: kept when given or when an episode failed (the error names them), else removed
        self._own_logs = log_dir is None
        self.log_dir = log_dir or Path(tempfile.mkdtemp(prefix="roadloop-over-ros-"))
        self.box = CommandBox()
        self.frames = 0
        self._nodes: NodeSet | None = None
        self._link: RosLink | None = None
        self._last_command: Any = None
        self._started = False

    # -- episode --------------------------------------------------------------------------------
    def reset(self, scenario: str, seed: int) -> None:
        self._stop()
        try:
            self._start()
        except DriverError:
            self._own_logs = False
            raise

    def _start(self) -> None:
        self._last_command = None
        self._started = False
        self.box.clear()
        self.predictor.reset()
        key = self.params.path(self.params.drive.public_key).resolve()
        drive = {"bundle": str(self.bundle), "public_key": str(key)}
        source = self.params.source.resolve()
        params_file = episode_params(source, drive, self.log_dir / "vehicle.yaml")
        self._nodes = NodeSet(params_file, source.parent, self.log_dir)
        self._link = RosLink(self.registry, self.box, list(self.inputs))
        readers = {self.registry[role].name: n for role, n in self.inputs.items()}
        missing = self._link.wait_matched(readers, self.config.startup_timeout_s, self._nodes.alive)
        self._nodes.check_alive("while the graph was discovered")
        if missing:
            raise DriverError(f"over ROS: not matched within {self.config.startup_timeout_s:g} s: {', '.join(missing)}")
        self._preroll()

    def _preroll(self) -> None:
        """Advance /clock from 1 s (long before any episode) until drive_node has its model.

        The nodes' timers run on /clock: drive_node reports its loaded model on its poll timer, so its
        clock must move while it loads. Nothing is published but /clock; the safety node's watchdog
        stops (stamped with this early time) are dropped before the episode.
        """
        assert self._link is not None and self._nodes is not None
        t = 1_000_000_000
        end = time.monotonic() + self.config.startup_timeout_s
        while not self._nodes.model_loaded():
            self._nodes.check_alive("before its model loaded")
            refused = self._nodes.model_refused()
            if refused is not None:
                raise DriverError(f"drive_node: {refused}")
            if time.monotonic() > end:
                raise DriverError(
                    f"drive_node: no `{MODEL_LOADED}` within {self.config.startup_timeout_s:g} s: "
                    f"{self._nodes.nodes[0].tail()}"
                )
            self._link.clock(t)
            t += self.period_ns
            time.sleep(0.05)

    def _handshake(self, first_frame_ns: int) -> None:
        """/clock at the watchdog slot before the first frame, until the safety node's stop carries its stamp."""
        assert self._link is not None and self._nodes is not None
        t = watchdog_slot_ns(first_frame_ns - JUST_BEFORE_NS, self.period_ns)
        end = time.monotonic() + self.config.startup_timeout_s
        while not self.box.wait_newer(t, 0.2):
            self._nodes.check_alive("during the /clock handshake")
            if time.monotonic() > end:
                raise DriverError(
                    f"over ROS: safety_node never answered /clock {t} ns within {self.config.startup_timeout_s:g} s"
                )
            self._link.clock(t)  # best-effort: repeated until it is seen
        self.box.clear()

    def act(self, obs: Observation) -> Any:
        try:
            return self._act(obs)
        except DriverError:
            self._own_logs = False
            raise

    def _act(self, obs: Observation) -> Any:
        link, nodes = self._link, self._nodes
        if link is None or nodes is None:
            raise DriverError("over ROS: act() before reset()")
        frames = self.predictor.frames(obs.period)
        if not self._started and frames:
            self._handshake(frames[0])
            self._started = True
        if self._started:
            link.clock(obs.time_ns - JUST_BEFORE_NS)
        link.publish(obs.raw)
        for stamp in frames:
            try:
                self._last_command = self.box.wait(stamp, self.config.command_deadline_s, self.registry["command"].name)
            except DriverError:
                nodes.check_alive("while the simulator waited for a command")
                raise
            self.frames += 1
        if self._last_command is not None:
            return self._last_command
        odom = obs.messages.get(self.registry["odometry"].name)
        speed = float(odom.twist.twist.linear.x) if odom is not None else 0.0
        return self.factory.command(obs.time_ns, 0.0, speed)

    def close(self) -> None:
        self._stop()
        if self._own_logs:
            shutil.rmtree(self.log_dir, ignore_errors=True)

    def _stop(self) -> None:
        if self._nodes is not None:
            self._nodes.stop(self.config.node_stop_timeout_s)
            self._nodes = None
        if self._link is not None:
            self._link.close()
            self._link = None
