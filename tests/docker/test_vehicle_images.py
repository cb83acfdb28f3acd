"""The vehicle images install everything the vehicle package imports, and keep the distro's numpy.

Read statically from each Dockerfile (no Docker engine here): its ROS distro, the apt packages it installs, the
pip requirements file it installs, and how. Then every import of roadloop_core + roadloop_vehicle (and the launch
files), every ROS message package the nodes use (config/topics.yaml, the type names in the code) and the recorder's
storage plugin must be provided by one of: the base image's ROS (ros-base, REP 2001), an apt package the image
installs, or a pin in its requirements file.
"""

from __future__ import annotations

import ast
import re
import shlex
import sys
from importlib.metadata import packages_distributions
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
VEHICLE_CODE = [
    REPO / "src" / "roadloop_core" / "roadloop_core",
    REPO / "src" / "roadloop_vehicle" / "roadloop_vehicle",
]
LAUNCH = REPO / "launch"

# ros-<distro>-ros-base (REP 2001: ros_core + rosbag2, geometry2, ...), the ROS packages our code can rely on
# without installing them; anything else (ackermann_msgs above all) must be an explicit apt package.
ROS_BASE = {
    "rclpy", "rcl_interfaces", "builtin_interfaces", "rosgraph_msgs", "std_msgs", "geometry_msgs", "sensor_msgs",
    "nav_msgs", "diagnostic_msgs", "launch", "launch_ros", "ros2launch", "ros2cli", "ros2run", "rosbag2", "ros2bag",
}  # fmt: skip
# Python modules of the ROS distribution (imported by the node layer and the launch files)
ROS_PYTHON = {"rclpy", "rcl_interfaces", "launch", "launch_ros", "launch_pytest", "launch_testing"}
# Python libraries taken from the distro (the ROS message modules are built against its numpy)
APT_PYTHON = {"numpy": "python3-numpy", "yaml": "python3-yaml", "matplotlib": "python3-matplotlib",
              "tensorrt": "python3-libnvinfer"}  # fmt: skip
NEVER_FROM_PIP = {"numpy", "pyyaml"}
# modules a PyPI distribution provides that is not installed in this test environment
PIP_NAME = {"cuda": "cuda-python", "tensorrt": "tensorrt"}
IMAGES = {
    "vehicle.Dockerfile": {"distro_from": "ARG", "optional": {"tensorrt", "cuda"}},  # GPU backend: not in this image
    "vehicle-jetson.Dockerfile": {"distro_from": "ENV", "optional": set()},  # TensorRT is its backend
}


def _instructions(dockerfile: Path) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    buf = ""
    for raw in dockerfile.read_text().splitlines():
        line = raw.strip()
        if line.startswith("#") or (not buf and not line):
            continue
        if line.endswith("\\"):
            buf += line[:-1] + " "
            continue
        buf += line
        word, _, rest = buf.partition(" ")
        out.append((word.upper(), rest.strip()))
        buf = ""
    return out


def _distro(dockerfile: Path) -> str:
    text = dockerfile.read_text()
    found = re.search(r"^(?:ARG|ENV) ROS_DISTRO=(\w+)", text, re.M)
    assert found, f"{dockerfile.name}: ROS_DISTRO is not set"
    return found.group(1)


def _apt_packages(dockerfile: Path) -> set[str]:
    distro = _distro(dockerfile)
    pkgs: set[str] = set()
    for instr, args in _instructions(dockerfile):
        if instr != "RUN":
            continue
        for part in re.split(r"&&", args):
            if "apt-get install" not in part:
                continue
            tokens = shlex.split(part)
            if tokens[:2] == ["apt-get", "install"]:
                pkgs |= {t.replace("${ROS_DISTRO}", distro) for t in tokens[2:] if not t.startswith("-")}
    return pkgs


def _pip_runs(dockerfile: Path) -> list[str]:
    return [p for i, a in _instructions(dockerfile) if i == "RUN" for p in re.split(r"&&", a) if "pip3 install" in p]


def _requirements(dockerfile: Path) -> dict[str, str]:
    (req,) = set(re.findall(r"docker/(requirements-[a-z]+\.txt)", dockerfile.read_text()))
    pins = {}
    for line in (DOCKER / req).read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, _, version = line.partition("==")
            pins[name.lower()] = version
    return pins


def _imports(roots: list[Path]) -> set[str]:
    """Every top-level module imported (guarded optional imports too: each must be installed or declared optional)."""
    mods: set[str] = set()
    for root in roots:
        for f in [root] if root.is_file() else root.rglob("*.py"):
            for node in ast.walk(ast.parse(f.read_text())):
                if isinstance(node, ast.Import):
                    mods |= {a.name.split(".")[0] for a in node.names}
                elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
                    mods.add(node.module.split(".")[0])
    return {m for m in mods if m not in sys.stdlib_module_names and not m.startswith("roadloop")}


def _ros_packages_used() -> set[str]:
    """Message packages (topics.yaml types, type names in the code) and the recorder's storage plugin."""
    registry = yaml.safe_load((REPO / "config" / "topics.yaml").read_text())
    types = set(re.findall(r"type:\s*([a-z_]+)/msg/", yaml.safe_dump(registry)))
    for root in VEHICLE_CODE[1:]:
        for f in root.rglob("*.py"):
            types |= set(re.findall(r"\"([a-z_]+)/(?:msg|srv)/[A-Z]\w*\"", f.read_text()))
    launch_text = (LAUNCH / "vehicle.launch.py").read_text()
    if re.search(r"['\"]-s['\"],\s*['\"]mcap['\"]", launch_text) or "-s mcap" in launch_text:
        types.add("rosbag2_storage_mcap")
    return types


def _provided_by_apt(ros_pkg: str, apt: set[str], distro: str) -> bool:
    return f"ros-{distro}-{ros_pkg.replace('_', '-')}" in apt


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def test_the_vehicle_code_uses_ackermann_msgs_and_mcap() -> None:
    """The scan finds what the nodes really need (otherwise the checks below would pass vacuously)."""
    used = _ros_packages_used()
    assert {"ackermann_msgs", "sensor_msgs", "diagnostic_msgs", "rosgraph_msgs", "rosbag2_storage_mcap"} <= used
    assert {"numpy", "yaml", "onnxruntime", "rosbags", "rclpy"} <= _imports(VEHICLE_CODE)


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_every_ros_package_the_nodes_use_is_installed(name: str) -> None:
    dockerfile = DOCKER / name
    apt, distro = _apt_packages(dockerfile), _distro(dockerfile)
    missing = sorted(p for p in _ros_packages_used() if p not in ROS_BASE and not _provided_by_apt(p, apt, distro))
    assert not missing, f"{name}: installs no ros-{distro}-* package for {', '.join(missing)} (not in ros-base)"


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_every_python_import_is_installed(name: str) -> None:
    dockerfile = DOCKER / name
    apt, distro, pins = _apt_packages(dockerfile), _distro(dockerfile), {_norm(p) for p in _requirements(dockerfile)}
    dists = packages_distributions()
    missing = []
    imports = _imports([*VEHICLE_CODE, LAUNCH / "vehicle.launch.py", LAUNCH / "replay.launch.py"])
    for mod in sorted(imports - IMAGES[name]["optional"]):
        if mod in ROS_PYTHON:
            ok = mod in ROS_BASE or _provided_by_apt(mod, apt, distro)
        elif mod in APT_PYTHON:
            ok = APT_PYTHON[mod] in apt
        else:
            names = {_norm(d) for d in dists.get(mod, [PIP_NAME.get(mod, mod)])}
            ok = bool(names & pins)
        if not ok:
            missing.append(mod)
    assert not missing, f"{name}: the vehicle code imports {', '.join(missing)}, which the image does not install"


@pytest.mark.parametrize("name", sorted(IMAGES))
def test_the_distros_numpy_is_kept(name: str) -> None:
    dockerfile = DOCKER / name
    text = dockerfile.read_text()
    assert "--ignore-installed" not in text, f"{name}: pip --ignore-installed would shadow the distro's numpy"
    assert not NEVER_FROM_PIP & set(_requirements(dockerfile)), f"{name}: numpy/PyYAML must come from apt"
    assert {"python3-numpy", "python3-yaml"} <= _apt_packages(dockerfile)
    runs = _pip_runs(dockerfile)
    assert runs
    for run in runs:  # every pip run is pinned to the installed numpy, or installs without dependencies
        assert "-c /tmp/distro-constraints.txt" in run or "--no-deps" in run, f"{name}: unconstrained `{run.strip()}`"
    assert re.search(r"import numpy.*numpy==\{numpy.__version__\}.*> /tmp/distro-constraints.txt", text, re.S)


def test_the_jetson_image_has_what_the_tensorrt_backend_imports() -> None:
    dockerfile = DOCKER / "vehicle-jetson.Dockerfile"
    backend = _imports([VEHICLE_CODE[1] / "runtime"])
    assert {"tensorrt", "cuda"} <= backend
    assert "python3-libnvinfer" in _apt_packages(dockerfile)
    assert "cuda-python" in _requirements(dockerfile)
