"""The onboard node processes an over-ROS episode drives with: drive_node and safety_node, as on the car.

They are their console scripts (the same executables `ros2 launch` starts), from the environment
that runs the simulator, with the vehicle's params file and `use_sim_time` on, so staleness, the
watchdog and every timer measure the simulator's /clock. A fresh pair per episode: a car's nodes
start with the car, and an episode's clock starts where every episode starts.
Their stdout/stderr go to files (a full pipe must never block a node); a failed start quotes them.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from roadloop_core.config import load_yaml
from roadloop_core.fsio import atomic_write_text
from roadloop_sim.errors import DriverError
from roadloop_vehicle.nodes.entry import DIE_WITH_PARENT

__all__ = ["MODEL_LOADED", "NodeProcess", "NodeSet", "episode_params", "node_argv"]

NODES = ("drive_node", "safety_node")
MODEL_LOADED = "model loaded"  # drive_node logs `model loaded <label>` once its bundle is verified and warm
MODEL_REFUSED = "model refused"  # ... and `model refused <label> <reason>` when it is not (it keeps running)


def node_argv(node: str, params_file: Path) -> list[str]:
    """The command line of one node: its console script next to this interpreter, else on PATH."""
    exe = Path(sys.executable).parent / node
    script = str(exe) if exe.exists() else (shutil.which(node) or node)
    return [script, "--ros-args", "--params-file", str(params_file)]


def episode_params(vehicle_params: Path, drive: dict[str, Any], out: Path, *, sim_time: bool = True) -> Path:
    """The vehicle's params file with `use_sim_time` (on by default) for every node and some drive_node values set.

    Written as a file: rcl gives a --params-file precedence over `-p` for the same node, so overrides on
    the command line would be ignored.
    """
    doc = load_yaml(vehicle_params)
    for section in ("/**", "drive_node"):
        body = doc.get(section)
        if not isinstance(body, dict) or not isinstance(body.get("ros__parameters"), dict):
            raise DriverError(f"{vehicle_params}: {section}: no ros__parameters mapping")
    doc["/**"]["ros__parameters"]["use_sim_time"] = sim_time
    doc["drive_node"]["ros__parameters"].update(drive)
    atomic_write_text(out, yaml.safe_dump(doc, sort_keys=False))
    return out


@dataclass
class NodeProcess:
    name: str
    proc: subprocess.Popen[bytes]
    log: Path

    @classmethod
    def start(cls, name: str, argv: list[str], log_dir: Path, env: dict[str, str]) -> NodeProcess:
        log = log_dir / f"{name}-{time.monotonic_ns()}.log"
        with log.open("wb") as out:
            try:
                proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT, env=env)
            except OSError as err:
                raise DriverError(f"{name}: cannot start {argv[0]}: {err}") from err
        return cls(name, proc, log)

    def output(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""

    def tail(self, lines: int = 5) -> str:
        return " | ".join(self.output().strip().splitlines()[-lines:])

    def stop(self, timeout_s: float) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()


class NodeSet:
    """drive_node + safety_node for one episode; `ready()` waits for the model, `stop()` ends both."""

    def __init__(self, params_file: Path, config_dir: Path, log_dir: Path) -> None:
        # relative paths resolve as in the file's folder; the nodes end with this process, however it ends
        # (Linux: they are signalled when the thread that starts them exits: start them from a lasting thread)
        env = {**os.environ, "ROADLOOP_CONFIG_DIR": str(config_dir), DIE_WITH_PARENT: "1"}
        self.nodes: list[NodeProcess] = []
        try:
            for node in NODES:
                self.nodes.append(NodeProcess.start(node, node_argv(node, params_file), log_dir, env))
        except BaseException:
            self.stop(5.0)
            raise

    def alive(self) -> bool:
        return all(n.proc.poll() is None for n in self.nodes)

    def check_alive(self, during: str) -> None:
        for n in self.nodes:
            rc = n.proc.poll()
            if rc is not None:
                raise DriverError(f"{n.name} exited with status {rc} {during}: {n.tail()} (log {n.log})")

    def model_loaded(self) -> bool:
        return MODEL_LOADED in self.nodes[0].output()

    def model_refused(self) -> str | None:
        """drive_node's log line refusing the bundle (from `model refused` on), None while there is none."""
        for line in self.nodes[0].output().splitlines():
            if MODEL_REFUSED in line:
                return line[line.index(MODEL_REFUSED) :]
        return None

    def stop(self, timeout_s: float) -> None:
        for n in self.nodes:
            n.stop(timeout_s)
