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
    install_requires=[
        "numpy",
        "pyyaml",
        "rosbags",
        "mcap",
        "zstandard",
        "typer",
        "rich",
        "cryptography",
        "httpx",
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
