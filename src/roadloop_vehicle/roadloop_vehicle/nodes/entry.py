"""`node_main`: what every node's console script does before and after its wiring."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from roadloop_core.config import config_dir
from roadloop_core.lifetime import die_with_parent
from roadloop_vehicle.ros.io import NodeIO
from roadloop_vehicle.share import installed_config_dir

__all__ = ["DIE_WITH_PARENT", "node_main"]

DIE_WITH_PARENT = "ROADLOOP_DIE_WITH_PARENT"


def node_main(name: str, wire: Callable[[NodeIO, Path], Any], args: list[str] | None = None) -> None:
    """Run node `name`, wired by `wire(io, config folder)`; exit 2 with one line where rclpy cannot run.

    With ROADLOOP_DIE_WITH_PARENT=1 (set by programs that start the nodes as their own helpers: the
    simulator over ROS, the DDS benchmark) the node is killed when its starter exits, however it exits;
    on a car `ros2 launch` or systemd owns the nodes and the variable is unset."""
    if os.environ.get(DIE_WITH_PARENT) == "1":
        die_with_parent()
    try:
        from roadloop_vehicle.ros.adapter import run_node
    except ImportError as err:  # e.g. rclpy's sources without its C extension, or no ROS 2 sourced
        print(
            f"{name}: ROS 2 (rclpy) cannot run here ({str(err).splitlines()[0]}); "
            "`roadloop replay` runs the pipeline without ROS",
            file=sys.stderr,
        )
        sys.exit(2)
    # $ROADLOOP_CONFIG_DIR (the launch files set it), a source tree's config/, else the installed one
    base = config_dir(installed=installed_config_dir())
    sys.exit(run_node(name, lambda io: wire(io, base), args))
