"""The node processes an over-ROS episode starts never outlive the process that started them.

A `roadloop sim eval --over-ros` (or the DDS benchmark) killed by SIGKILL runs no cleanup; its
drive_node and safety_node must go with it, not spin on as orphans holding the test graph.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.processes import alive

pytestmark = pytest.mark.needs("rclpy", "ackermann_msgs")

REPO = Path(__file__).resolve().parents[3]

# Starts the two nodes as the simulator does, writes their pids once both run with the model loaded, waits.
STARTER = """
import json, sys, time
from pathlib import Path
from roadloop_core.fsio import atomic_write_text
from roadloop_sim.over_ros.nodes import NodeSet, episode_params
cfg, bundle, work = (Path(a) for a in sys.argv[1:4])
params = episode_params(cfg / "vehicle.yaml", {"bundle": str(bundle)}, work / "params.yaml", sim_time=False)
nodes = NodeSet(params, cfg, work)
deadline = time.monotonic() + 300
while not nodes.model_loaded():
    nodes.check_alive("while starting")
    if time.monotonic() > deadline:
        sys.exit("model not loaded in 300 s")
    time.sleep(0.1)
atomic_write_text(work / "pids.json", json.dumps([n.proc.pid for n in nodes.nodes]))
time.sleep(3600)
"""


def test_nodes_die_with_a_sigkilled_starter(ros_graph: Any, vehicle_config: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, bundle = vehicle_config
    pids_file = tmp_path / "pids.json"
    starter = subprocess.Popen([sys.executable, "-c", STARTER, str(cfg), str(bundle), str(tmp_path)], cwd=REPO)
    try:
        deadline = time.monotonic() + 300
        while not pids_file.exists():
            assert starter.poll() is None, f"the starter exited with {starter.returncode}"
            assert time.monotonic() < deadline, "the nodes did not load the model in 300 s"
            time.sleep(0.2)
        pids = json.loads(pids_file.read_text())
        assert all(alive(p) for p in pids)
        os.kill(starter.pid, signal.SIGKILL)
        starter.wait()
        deadline = time.monotonic() + 60
        while any(alive(p) for p in pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        survivors = [p for p in pids if alive(p)]
        assert not survivors, f"node processes {survivors} outlived their SIGKILLed starter"
    finally:
        for p in json.loads(pids_file.read_text()) if pids_file.exists() else []:
            if alive(p):
                os.kill(p, signal.SIGKILL)
        if starter.poll() is None:
            starter.kill()
