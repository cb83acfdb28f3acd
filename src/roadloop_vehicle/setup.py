"""Packaging for roadloop_vehicle: one file serves `colcon build` (ament_python) and `pip install -e`."""

import os
from glob import glob

from setuptools import find_packages, setup

PACKAGE = "roadloop_vehicle"
HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.join(HERE, "..", "..")  # launch/ and config/ live at the workspace root, shared by all packages


def shared(folder: str, pattern: str) -> list[str]:
    """Files of the workspace's `folder`, relative to this file (colcon runs setup.py from here)."""
    return sorted(os.path.relpath(p, HERE) for p in glob(os.path.join(ROOT, folder, pattern)))


setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "tests"]),
    package_data={PACKAGE: ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
        # `ros2 launch roadloop_vehicle vehicle.launch.py` looks in share/<package>/launch; the
        # nodes and the launch files resolve config/ next to it (roadloop_vehicle.share)
        ("share/" + PACKAGE + "/launch", shared("launch", "*.launch.py")),
        ("share/" + PACKAGE + "/config", shared("config", "*.yaml")),
    ],
    # Ranges the distros' Pythons satisfy (see roadloop_core's setup.py): onnxruntime 1.17 is the oldest release
    # with wheels for both Python 3.10 (Humble; newest there 1.23.x) and 3.12 (Jazzy).
    install_requires=[
        "roadloop_core",
        "numpy>=1.21,<3",
        "onnxruntime>=1.17,<2",
    ],
    # colcon runs `pytest` on test/ (ament style) when pytest is a test dependency.
    extras_require={"test": ["pytest"]},
    zip_safe=False,
    maintainer="roadloop developers",
    maintainer_email="dev@roadloop.invalid",
    description="Onboard driving pipeline, ROS 2 nodes, deterministic replay, fleet bridge client (no torch).",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "drive_node = roadloop_vehicle.nodes.drive_node:main",
            "safety_node = roadloop_vehicle.nodes.safety_node:main",
        ],
        "roadloop.verbs": [
            "replay = roadloop_vehicle.replay.cli:replay",
            "bridge = roadloop_vehicle.bridge.cli:app",
            "engine = roadloop_vehicle.runtime.engine_cli:app",
            "vehicle = roadloop_vehicle.provision.cli:app",
        ],
        "roadloop.bag_verbs": [
            "play = roadloop_vehicle.bag_play.cli:play",
        ],
    },
)
