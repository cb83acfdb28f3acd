"""On the vehicle: drive_node + safety_node + `ros2 bag record -s mcap` of the registry's record topics.

    ros2 launch launch/vehicle.launch.py [params_file:=...] [record_dir:=...] [split_duration_s:=60]

Parameters come from config/vehicle.yaml (the file replay and simulation read too);
the recorded topics are the `record: true` entries of config/topics.yaml, split by
duration so the bridge can ship closed bags while recording goes on.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

from launch.actions import DeclareLaunchArgument, ExecuteProcess
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration, PathJoinSubstitution
from launch_ros.actions import Node

from launch import LaunchDescription
from roadloop_core.registry import load_registry

CONFIG = Path(os.environ.get("ROADLOOP_CONFIG_DIR", Path(__file__).resolve().parents[1] / "config"))


def generate_launch_description() -> LaunchDescription:
    params_file = LaunchConfiguration("params_file")
    use_sim_time = LaunchConfiguration("use_sim_time")
    record_topics = [t.name for t in load_registry(CONFIG / "topics.yaml").recorded()]
    session = time.strftime("vehicle-%Y%m%dT%H%M%SZ", time.gmtime())
    return LaunchDescription(
        [
            DeclareLaunchArgument("params_file", default_value=str(CONFIG / "vehicle.yaml")),
            DeclareLaunchArgument("use_sim_time", default_value="false"),
            DeclareLaunchArgument("record", default_value="true", description="record the registry's topics"),
            DeclareLaunchArgument("record_dir", default_value=os.path.expanduser("~/.roadloop/recordings")),
            DeclareLaunchArgument("split_duration_s", default_value="60", description="one bag per this many s"),
            Node(
                package="roadloop_vehicle",
                executable="drive_node",
                name="drive_node",
                additional_env={"ROADLOOP_CONFIG_DIR": str(CONFIG)},  # relative params resolve against it
                parameters=[params_file, {"use_sim_time": use_sim_time}],
                output="screen",
            ),
            Node(
                package="roadloop_vehicle",
                executable="safety_node",
                name="safety_node",
                additional_env={"ROADLOOP_CONFIG_DIR": str(CONFIG)},
                parameters=[params_file, {"use_sim_time": use_sim_time}],
                output="screen",
                respawn=True,  # the monitor comes back if it dies; drive_node's commands stay gated meanwhile
            ),
            ExecuteProcess(
                cmd=[
                    "ros2",
                    "bag",
                    "record",
                    "-s",
                    "mcap",
                    "--max-bag-duration",
                    LaunchConfiguration("split_duration_s"),
                    "-o",
                    PathJoinSubstitution([LaunchConfiguration("record_dir"), session]),
                    *record_topics,
                ],
                condition=IfCondition(LaunchConfiguration("record")),
                output="screen",
            ),
        ]
    )
