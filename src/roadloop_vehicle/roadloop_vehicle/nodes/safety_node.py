"""safety_node: gates /control/command_raw -> /control/command and publishes /diagnostics.

A separate process from drive_node: a monitor must not share a process (or a GIL,
or a crash) with what it monitors. It judges each raw command as it arrives and,
on a timer at the command rate, stops the car when commands stop coming.
Staleness and the watchdog run on `io.monotonic_ns()` (a wall-clock step must not delay
the detection of a dead camera or drive node); stamps of what it publishes are node-clock time.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from roadloop_core.config import config_dir
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.registry import load_registry
from roadloop_core.stamps import header_stamp_ns
from roadloop_vehicle.output_messages import command_from_msg, command_msg, waypoints_from_path
from roadloop_vehicle.params import SafetyParams, resolve_path
from roadloop_vehicle.pipeline import EGO_FRAME
from roadloop_vehicle.ros.io import NodeIO
from roadloop_vehicle.safety.core import SafetyCore
from roadloop_vehicle.safety.supervisor import SafetyOutput, observed_roles
from roadloop_vehicle.share import installed_config_dir

__all__ = ["SafetyNode", "main", "wire_safety"]


@dataclass
class SafetyNode:
    core: SafetyCore
    last_seen: dict[str, int | None] = field(default_factory=dict)
    trajectory: tuple[int, npt.NDArray[np.float32]] | None = None  # (header stamp, waypoints)
    speed: float | None = None  # latest odometry speed: gives the command's acceleration its sign


def wire_safety(io: NodeIO, base: Path) -> SafetyNode:
    """Wire the safety core to `io`; relative paths in the parameters resolve against `base` (the config folder)."""
    params = io.parameters(SafetyParams)
    registry = load_registry(resolve_path(params.topics_config, base))
    io.use_registry(registry)
    # the drive node's model reads these (its bundle must match this observation spec): they are monitored
    observed = observed_roles(ObservationSpec.from_config(resolve_path(params.observation_config, base)))
    core = SafetyCore(
        params.safety, params.vehicle_limits, registry, params.diagnostics_period_s, observed_roles=observed
    )
    node = SafetyNode(core)
    store = node.core.typestore
    publish_cmd = io.publisher("command")
    publish_diag = io.publisher("diagnostics")

    def emit(mono_ns: int, stamp_ns: int, out: SafetyOutput) -> None:
        publish_cmd(command_msg(store, stamp_ns, out.command, EGO_FRAME))
        diag = node.core.diagnostics(mono_ns, out, stamp_ns=io.now_ns())
        if diag is not None:
            publish_diag(diag)
        if out.changed:
            (io.info if not out.faults else io.warn)(f"safety: {out.state.value} {out.reason}")

    def seen(role: str) -> None:
        def on_message(data: bytes, now_ns: int) -> None:
            node.last_seen[role] = io.monotonic_ns()

        io.subscribe(role, on_message)

    def on_odometry(data: bytes, now_ns: int) -> None:
        node.last_seen["odometry"] = io.monotonic_ns()
        odom: Any = store.deserialize_cdr(data, registry["odometry"].type)
        node.speed = float(odom.twist.twist.linear.x)

    io.subscribe("odometry", on_odometry)
    for role in core.supervisor.monitored_roles:
        if role not in ("command_raw", "odometry"):
            seen(role)

    def on_trajectory(data: bytes, now_ns: int) -> None:
        msg = store.deserialize_cdr(data, registry["trajectory"].type)
        node.trajectory = (header_stamp_ns(msg), waypoints_from_path(msg))

    def on_command(data: bytes, now_ns: int) -> None:
        msg = store.deserialize_cdr(data, registry["command_raw"].type)
        stamp = header_stamp_ns(msg)
        # the trajectory of the same frame (same sensor stamp) is checked for NaN and jumps too
        waypoints = node.trajectory[1] if node.trajectory and node.trajectory[0] == stamp else None
        cmd = command_from_msg(msg, node.speed)
        mono = io.monotonic_ns()
        emit(mono, stamp, node.core.on_command(mono, node.last_seen, cmd, waypoints, cmd.speed))

    slack_ns = int(node.core.tick_period_s * 1e9) // 2  # this timer paces the ticks: its jitter must not drop one

    def on_tick() -> None:
        mono = io.monotonic_ns()
        out = node.core.tick(mono, node.last_seen, slack_ns=slack_ns)
        if out is not None:
            emit(mono, io.now_ns(), out)

    io.subscribe("trajectory", on_trajectory)
    io.subscribe("command_raw", on_command)
    io.timer(node.core.tick_period_s, on_tick)
    node.core.start(io.monotonic_ns())  # stop commands from now on, whether or not drive_node ever starts
    io.info(f"safety_node: gating {registry['command_raw'].name} -> {registry['command'].name}")
    return node


def main(args: list[str] | None = None) -> None:
    try:
        from roadloop_vehicle.ros.adapter import run_node
    except ImportError as err:  # e.g. rclpy's sources without its C extension, or no ROS 2 sourced
        print(
            f"safety_node: ROS 2 (rclpy) cannot run here ({str(err).splitlines()[0]}); "
            "`roadloop replay` runs the pipeline without ROS",
            file=sys.stderr,
        )
        sys.exit(2)
    # $ROADLOOP_CONFIG_DIR (the launch files set it), a source tree's config/, else the installed one
    base = config_dir(installed=installed_config_dir())
    sys.exit(run_node("safety_node", lambda io: wire_safety(io, base), args))


if __name__ == "__main__":
    main()
