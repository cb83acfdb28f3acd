"""The over-ROS lockstep without ROS: its config, the command box and the frame predictor."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
import yaml

from roadloop_core.config import config_dir
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.errors import ConfigError
from roadloop_core.registry import load_registry
from roadloop_sim.errors import DriverError
from roadloop_sim.over_ros import CommandBox, FramePredictor, OverRosConfig, load_over_ros_config

pytestmark = pytest.mark.needs("highway_env")

REG = load_registry(config_dir() / "topics.yaml")


def test_config_from_the_scenarios_file_and_its_faults(tmp_path: Path) -> None:
    assert load_over_ros_config(config_dir() / "scenarios.yaml") == OverRosConfig(180.0, 60.0, 30.0)
    doc = yaml.safe_load((config_dir() / "scenarios.yaml").read_text())
    doc["over_ros"]["command_deadline_s"] = 0.0
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"s\.yaml: over_ros: command_deadline_s must be > 0$"):
        load_over_ros_config(tmp_path / "s.yaml")
    doc["over_ros"] = {"comand_deadline_s": 5.0}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(doc))
    with pytest.raises(ConfigError, match=r"over_ros: unknown parameter\(s\) comand_deadline_s"):
        load_over_ros_config(tmp_path / "s.yaml")


def test_command_box_hands_out_the_first_command_of_a_stamp_and_forgets_older_ones() -> None:
    box = CommandBox()
    box.put(100, "stop")
    box.put(200, "drive")
    box.put(200, "later duplicate")
    threading.Timer(0.05, box.put, (300, "next")).start()  # from another thread, as the subscription does
    assert box.wait(300, 60.0, "/control/command") == "next"
    box.put(150, "late")
    box.put(200, "again")
    assert box.wait(200, 60.0, "/control/command") == "again"  # 200 was dropped with everything before 300
    with pytest.raises(DriverError, match=r"^/control/command: no command stamped 150 ns within 0.05 s \(6 command"):
        box.wait(150, 0.05, "/control/command")  # taken away with 200
    assert box.wait_newer(300, 0.05) and not box.wait_newer(301, 0.05)


def _period(sim: Any, command: Any) -> list[tuple[str, int, Any]]:
    return list(sim.step(command).messages)


def test_the_predictor_expects_the_frames_the_drive_node_assembles(short_scenarios: Any) -> None:
    """The frame at t=0 lacks the route (published after its odometry): no command answers it; every later
    period completes its camera frame, stamped with the camera's stamp."""
    from roadloop_core.stamps import header_stamp_ns
    from roadloop_sim.highway import HighwayEnvSimulator
    from roadloop_sim.sensor_messages import MessageFactory

    predictor = FramePredictor(ObservationSpec.from_config(config_dir() / "dataset.yaml"), REG)
    sim = HighwayEnvSimulator(short_scenarios, REG)
    try:
        res = sim.reset("highway_light", 0)
        assert predictor.frames(res.messages) == []
        cmd = MessageFactory(REG.typestore).command(res.time_ns, 0.0, 20.0)
        for _ in range(3):
            period = _period(sim, cmd)
            cameras = [header_stamp_ns(m) for t, _, m in period if t == REG["camera"].name]
            assert predictor.frames(period) == cameras and len(cameras) == 1
        predictor.reset()
        assert predictor.frames(_period(sim, cmd)) == []  # a fresh assembler has no route yet
    finally:
        sim.close()
