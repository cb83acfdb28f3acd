"""Packaging for roadloop_core: one file serves `colcon build` (ament_python) and `pip install -e`."""

from setuptools import find_packages, setup

PACKAGE = "roadloop_core"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "tests"]),
    package_data={PACKAGE: ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ],
    # Ranges, not pins: on a vehicle this package runs on the ROS distro's own Python and numpy (Humble on
    # Ubuntu 22.04: Python 3.10, numpy 1.21.5, PyYAML 5.4; Jazzy on 24.04: Python 3.12, numpy 1.26), whose
    # generated message modules are built against numpy 1.x. The workspace pins (requirements.txt) sit inside.
    install_requires=[
        "numpy>=1.21,<3",
        "pyyaml>=5.4",
        "rosbags>=0.11,<0.12",
        "mcap>=1.1,<2",
        "zstandard>=0.19",
        "typer>=0.12",
        "rich>=13",
        "cryptography>=41",
        "httpx>=0.27,<1",
    ],
    # colcon runs `pytest` on test/ (ament style) when pytest is a test dependency.
    extras_require={"test": ["pytest"]},
    zip_safe=False,
    maintainer="roadloop developers",
    maintainer_email="dev@roadloop.invalid",
    description=(
        "Topic registry, codec, bag I/O, time sync, bundles and signatures, config, the contracts between the"
        " parts (upload wire format), the hub client, the roadloop CLI."
    ),
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "console_scripts": [
            "roadloop = roadloop_core.cli.main:main",
        ],
        "roadloop.verbs": [
            "bag = roadloop_core.cli.bag:app",
            "keys = roadloop_core.bundle.cli:keys_app",
            "bundle = roadloop_core.bundle.cli:bundle_app",
        ],
    },
)
