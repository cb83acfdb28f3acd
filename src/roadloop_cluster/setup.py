"""Packaging for roadloop_cluster: one file serves `colcon build` (ament_python) and `pip install -e`."""

from setuptools import find_packages, setup

PACKAGE = "roadloop_cluster"

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
        "roadloop_hub",  # the loop runs `roadloop hub serve`; the trainer image runs `hub export-bags/publish`
        "roadloop_vehicle",
        "roadloop_sim",
        "numpy",
        "torch==2.13.0",
        "onnx",
        "onnxruntime",
        "tensorboard",
        "matplotlib",
        "tqdm",
        "psutil",
    ],
    # colcon runs `pytest` on test/ (ament style) when pytest is a test dependency.
    extras_require={"test": ["pytest"]},
    zip_safe=False,
    maintainer="roadloop developers",
    maintainer_email="dev@roadloop.invalid",
    description="Dataset builder, torch data and models, torchrun trainer, export, gate, the fleet loop.",
    license="Apache-2.0",
    python_requires=">=3.10",
    entry_points={
        "roadloop.verbs": [
            "data = roadloop_cluster.data.cli:app",
            "train = roadloop_cluster.train.cli:train",
            "export = roadloop_cluster.export.cli:export",
            "loop = roadloop_cluster.loop.cli:loop",
        ],
    },
)
