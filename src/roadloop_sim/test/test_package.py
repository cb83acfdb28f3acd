"""ament-style package test (run by `colcon test`): the package installs, imports, and is what it says."""

from __future__ import annotations

import importlib
import pkgutil
import xml.etree.ElementTree as ET
from importlib.metadata import distribution
from pathlib import Path

PACKAGE = "roadloop_sim"
ROOT = Path(__file__).resolve().parents[1]


def test_package_xml_matches_the_distribution() -> None:
    xml = ET.parse(ROOT / "package.xml").getroot()
    assert xml.get("format") == "3"
    assert xml.findtext("name") == PACKAGE
    assert xml.findtext("version") == distribution(PACKAGE).version
    assert xml.findtext("export/build_type") == "ament_python"
    assert (ROOT / "resource" / PACKAGE).is_file()
    assert (ROOT / PACKAGE / "py.typed").is_file()


def test_public_api_names_exist() -> None:
    """Every module that declares `__all__` (and imports without optional extras) defines those names."""
    pkg = importlib.import_module(PACKAGE)
    checked = 0
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{PACKAGE}."):
        try:
            module = importlib.import_module(info.name)
        except ImportError as err:  # rclpy / tensorrt / carla adapters need their runtime
            assert err.name and err.name.split(".")[0] in {
                "rclpy",
                "tensorrt",
                "carla",
                "pycuda",
                "cuda",
                "launch",
                "launch_ros",
                "rosidl_runtime_py",
            }, err
            continue
        for name in getattr(module, "__all__", []):
            assert hasattr(module, name), f"{info.name}.__all__ names {name}, which it does not define"
            checked += 1
    assert checked > 0


def test_cli_verbs_load() -> None:
    for ep in distribution(PACKAGE).entry_points:
        if ep.group == "roadloop.verbs":
            assert ep.load() is not None, ep
