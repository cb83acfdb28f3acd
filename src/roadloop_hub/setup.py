"""Packaging for roadloop_hub: one file serves `colcon build` (ament_python) and `pip install -e`."""

from setuptools import find_packages, setup

PACKAGE = "roadloop_hub"

setup(
    name=PACKAGE,
    version="0.1.0",
    packages=find_packages(exclude=["test", "tests"]),
    package_data={PACKAGE: ["py.typed"]},
    data_files=[
        ("share/ament_index/resource_index/packages", ["resource/" + PACKAGE]),
        ("share/" + PACKAGE, ["package.xml"]),
    ],
    # No torch, no roadloop_vehicle: the hub deploys on its own (docker/hub.Dockerfile).
    install_requires=[
        "roadloop_core",
        "fastapi",
        "starlette",
        "uvicorn",
        "psycopg[binary]",
        "cryptography",
        "typer",
        "rich",
        "matplotlib",
    ],
    # colcon runs `pytest` on test/ (ament style) when pytest is a test dependency.
    extras_require={"test": ["pytest"]},
    zip_safe=False,
    maintainer="roadloop developers",
    maintainer_email="dev@roadloop.invalid",
    description="The fleet hub: resumable uploads, the bag catalog, the signed-bundle registry (no torch).",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "roadloop.verbs": [
            "hub = roadloop_hub.cli:app",
        ],
    },
)
