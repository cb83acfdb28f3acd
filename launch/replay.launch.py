"""Replay a bag into the real nodes: `ros2 bag play --clock` drives /clock, the nodes run on use_sim_time.

    ros2 launch launch/replay.launch.py bag:=BAG [params_file:=...] [rate:=1.0]

The same config/vehicle.yaml as on the car; `roadloop replay` does the same without
ROS (deterministic, as fast as the CPU allows).
"""

from __future__ import annotations

import os
from pathlib import Path

from launch.actions import DeclareLaunchArgument, ExecuteProcess, TimerAction
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node

from launch import LaunchDescription
from roadloop_core.registry import load_registry

CONFIG = Path(os.environ.get("ROADLOOP_CONFIG_DIR", Path(__file__).resolve().parents[1] / "config"))


def generate_launch_description() -> LaunchDescription:
    params_file = LaunchConfiguration("params_file")
    registry = load_registry(CONFIG / "topics.yaml")
    # only inputs are played: the nodes produce trajectory/command/diagnostics themselves
    outputs = {registry[r].name for r in ("trajectory", "command_raw", "command", "diagnostics")}
    inputs = [t.name for t in registry.topics.values() if t.name not in outputs]
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
            TimerAction(
                period=LaunchConfiguration("start_delay_s"),
                actions=[
                    ExecuteProcess(
                        cmd=[
                            "ros2",
                            "bag",
                            "play",
                            LaunchConfiguration("bag"),
                            "--clock",
                            "--rate",
                            LaunchConfiguration("rate"),
                            "--topics",
                            *inputs,
                        ],
                        output="screen",
                    )
                ],
            ),
        ]
    )
