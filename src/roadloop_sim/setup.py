"""Packaging for roadloop_sim: one file serves `colcon build` (ament_python) and `pip install -e`."""

from setuptools import find_packages, setup

PACKAGE = "roadloop_sim"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "tests"]),
    package_data={PACKAGE: ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ],
    install_requires=[
        "roadloop_core",
        "roadloop_vehicle",
        "numpy",
        "highway-env",
        "gymnasium",
        "pygame-ce",
        "matplotlib",
    ],
    # colcon runs `pytest` on test/ (ament style) when pytest is a test dependency.
    extras_require={"test": ["pytest"]},
    zip_safe=False,
    maintainer="roadloop developers",
    maintainer_email="dev@roadloop.invalid",
    description="Simulator protocol, highway-env and CARLA backends, expert driver, closed-loop evaluator.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "roadloop.verbs": [
            "sim = roadloop_sim.cli:app",
        ],
    },
)
