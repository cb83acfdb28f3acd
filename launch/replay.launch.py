"""Replay a bag into the real nodes: `ros2 bag play --clock` drives /clock, the nodes run on use_sim_time.

    ros2 launch launch/replay.launch.py bag:=BAG [params_file:=...] [rate:=1.0]

The same config/vehicle.yaml as on the car; `roadloop replay` does the same without
ROS (deterministic, as fast as the CPU allows). When the player exits (the bag is played, or
it failed to open the bag) the launch logs one summary line (player exit code, wall time, the
bag's message count and duration) and shuts the nodes down, so the launch itself ends.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from launch.actions import DeclareLaunchArgument, EmitEvent, ExecuteProcess, LogInfo, RegisterEventHandler, TimerAction
from launch.event_handlers import OnProcessExit, OnProcessStart
from launch.events import Shutdown
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from roadloop_core.registry import load_registry
from roadloop_vehicle.replay.launch_summary import replay_summary

CONFIG = Path(os.environ.get("ROADLOOP_CONFIG_DIR", Path(__file__).resolve().parents[1] / "config"))


def generate_launch_description() -> LaunchDescription:
    params_file = LaunchConfiguration("params_file")
    registry = load_registry(CONFIG / "topics.yaml")
    # only inputs are played: the nodes produce trajectory/command/diagnostics themselves
    outputs = {registry[r].name for r in ("trajectory", "command_raw", "command", "diagnostics")}
    inputs = [t.name for t in registry.topics.values() if t.name not in outputs]
    player = ExecuteProcess(
        cmd=["ros2", "bag", "play", LaunchConfiguration("bag"), "--clock", "--rate", LaunchConfiguration("rate"),
             "--topics", *inputs],
        name="player",
        output="screen",
    )  # fmt: skip
    started = [time.monotonic()]

    def player_started(_event: Any, _context: Any) -> None:
        started[0] = time.monotonic()

    def player_exited(event: Any, context: Any) -> list[Any]:
        bag = Path(LaunchConfiguration("bag").perform(context))
        rate = LaunchConfiguration("rate").perform(context)
        _, line = replay_summary(bag, event.returncode, time.monotonic() - started[0], rate)
        return [LogInfo(msg=line), EmitEvent(event=Shutdown(reason=line))]

    return LaunchDescription(
        [
            DeclareLaunchArgument("bag", description="rosbag2 folder to play"),
            DeclareLaunchArgument("params_file", default_value=str(CONFIG / "vehicle.yaml")),
            DeclareLaunchArgument("rate", default_value="1.0"),
            DeclareLaunchArgument("start_delay_s", default_value="3.0", description="let the nodes load the model"),
            Node(
                package="roadloop_vehicle",
                executable="drive_node",
                name="drive_node",
                additional_env={"ROADLOOP_CONFIG_DIR": str(CONFIG)},  # relative params resolve against it
                parameters=[params_file, {"use_sim_time": True}],
                output="screen",
            ),
            Node(
                package="roadloop_vehicle",
                executable="safety_node",
                name="safety_node",
                additional_env={"ROADLOOP_CONFIG_DIR": str(CONFIG)},
                parameters=[params_file, {"use_sim_time": True}],
                output="screen",
            ),
            RegisterEventHandler(OnProcessStart(target_action=player, on_start=player_started)),
            RegisterEventHandler(OnProcessExit(target_action=player, on_exit=player_exited)),
            TimerAction(period=LaunchConfiguration("start_delay_s"), actions=[player]),
        ]
    )
