"""Check the layout `colcon build` installed (the colcon stage of `make test`): python check_colcon_install.py INSTALL.

`ros2 launch roadloop_vehicle vehicle.launch.py` finds the launch file in share/roadloop_vehicle/launch;
the launch files and the installed nodes resolve config/ next to it. Checked from the install itself
(its site-packages first, no source tree on the path, no ROADLOOP_CONFIG_DIR), as a vehicle runs it.
"""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

SHARE_FILES = [
    "package.xml",
    "launch/vehicle.launch.py",
    "launch/replay.launch.py",
    "config/vehicle.yaml",
    "config/topics.yaml",
    "config/dataset.yaml",
]
SCRIPTS = ["drive_node", "safety_node"]

PROBE = """
import sys
from roadloop_core.config import config_dir
from roadloop_vehicle.share import installed_config_dir, share_dir
import roadloop_vehicle
print(roadloop_vehicle.__file__)
print(share_dir())
print(config_dir(installed=installed_config_dir()))  # what the nodes' main() resolves
"""


def main(install: Path) -> int:
    share = install / "roadloop_vehicle" / "share" / "roadloop_vehicle"
    problems = [f"{share / f}: not installed" for f in SHARE_FILES if not (share / f).is_file()]
    problems += [
        f"{install}/roadloop_vehicle/lib/roadloop_vehicle/{s}: console script not installed"
        for s in SCRIPTS
        if not (install / "roadloop_vehicle" / "lib" / "roadloop_vehicle" / s).is_file()
    ]
    site = sorted(glob.glob(str(install / "*" / "lib" / "python*" / "site-packages")))
    env = {k: v for k, v in os.environ.items() if k != "ROADLOOP_CONFIG_DIR"}
    code = f"import sys; sys.path[:0] = {site!r}\n{PROBE}"
    res = subprocess.run([sys.executable, "-c", code], cwd="/", env=env, capture_output=True, text=True, check=False)
    if res.returncode != 0:
        problems.append(f"the installed roadloop_vehicle does not import: {res.stderr.strip().splitlines()[-1:]}")
    else:
        module, found_share, config = res.stdout.split()
        if not module.startswith(str(install)):
            problems.append(f"imported {module}, not the install's copy")
        if Path(found_share) != share or Path(config) != share / "config":
            problems.append(f"installed nodes resolve share {found_share}, config {config}; want {share}")
    for p in problems:
        print(f"colcon install: {p}", file=sys.stderr)
    if not problems:
        print(f"colcon install: launch files and config installed under {share}, resolved there at run time")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main(Path(sys.argv[1]).resolve()))
