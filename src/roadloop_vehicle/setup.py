"""Packaging for roadloop_vehicle: one file serves `colcon build` (ament_python) and `pip install -e`."""

from setuptools import find_packages, setup

PACKAGE = "roadloop_vehicle"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "tests"]),
    package_data={PACKAGE: ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
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
