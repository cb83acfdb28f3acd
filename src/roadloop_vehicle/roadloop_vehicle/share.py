"""The package's share folder (`share/roadloop_vehicle/`: launch files and default config) the ROS way.

`colcon build` installs `launch/` and `config/` there (setup.py data_files), so `ros2 launch
roadloop_vehicle vehicle.launch.py` and the installed nodes find them without a source tree.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["PACKAGE", "installed_config_dir", "share_dir"]

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


def installed_config_dir() -> Path | None:
    """share/roadloop_vehicle/config of the install, where the nodes' entry points fall back to
    (`config_dir(installed=...)`) when neither $ROADLOOP_CONFIG_DIR nor a source tree's config/ is there."""
    share = share_dir()
    return share / "config" if share is not None else None
