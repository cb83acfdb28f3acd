"""The package's share folder (`share/roadloop_vehicle/`: launch files and default config) the ROS way.

`colcon build` installs `launch/` and `config/` there (setup.py data_files), so `ros2 launch
roadloop_vehicle vehicle.launch.py` and the installed nodes find them without a source tree.
"""

from __future__ import annotations

import os
from pathlib import Path

from roadloop_core.config import config_dir

__all__ = ["PACKAGE", "node_config_dir", "share_dir"]

PACKAGE = "roadloop_vehicle"


def share_dir() -> Path | None:
    """share/roadloop_vehicle of the install this code runs from, else of the first AMENT_PREFIX_PATH
    prefix that has one (what ament_index_python's get_package_share_directory finds); None when neither has."""
    # <prefix>/lib/pythonX.Y/site-packages/roadloop_vehicle/share.py -> <prefix>
    prefixes = [Path(__file__).resolve().parents[4]]
    prefixes += [Path(p) for p in os.environ.get("AMENT_PREFIX_PATH", "").split(os.pathsep) if p]
    for prefix in prefixes:
        share = prefix / "share" / PACKAGE
        if (share / "package.xml").is_file():
            return share
    return None


def node_config_dir() -> Path:
    """Where the nodes resolve relative paths of their parameters: $ROADLOOP_CONFIG_DIR, the repository's
    config/ when running from a source tree, else the installed share/roadloop_vehicle/config."""
    share = share_dir()
    return config_dir(installed=share / "config" if share is not None else None)
