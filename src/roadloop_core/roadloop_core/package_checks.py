"""Checks every roadloop package runs under `colcon test` (ament style): it installed, imports, and is what it says.

Kept in roadloop_core (which every package depends on) so the four packages' `test/test_package.py`
files are one line each per check instead of four copies.
"""

from __future__ import annotations

import importlib
import pkgutil
import xml.etree.ElementTree as ET
from importlib.metadata import distribution
from pathlib import Path

__all__ = ["check_cli_verbs_load", "check_package_xml", "check_public_api_names"]

# adapters for these runtimes are imported only where the runtime exists (vehicle, GPU, CARLA host)
OPTIONAL_RUNTIMES = frozenset(
    {"rclpy", "rcl_interfaces", "rosgraph_msgs", "tensorrt", "carla", "pycuda", "cuda", "launch", "launch_ros"}
)


def check_package_xml(package: str, root: Path) -> None:
    xml = ET.parse(root / "package.xml").getroot()
    assert xml.get("format") == "3"
    assert xml.findtext("name") == package
    assert xml.findtext("version") == distribution(package).version
    assert xml.findtext("export/build_type") == "ament_python"
    assert (root / "resource" / package).is_file()
    assert (root / package / "py.typed").is_file()


def check_public_api_names(package: str) -> None:
    """Every module that declares `__all__` (and imports without optional runtimes) defines those names."""
    pkg = importlib.import_module(package)
    checked = 0
    for info in pkgutil.walk_packages(pkg.__path__, prefix=f"{package}."):
        try:
            module = importlib.import_module(info.name)
        except ImportError as err:
            assert err.name and err.name.split(".")[0] in OPTIONAL_RUNTIMES, err
            continue
        for name in getattr(module, "__all__", []):
            assert hasattr(module, name), f"{info.name}.__all__ names {name}, which it does not define"
            checked += 1
    assert checked > 0


def check_cli_verbs_load(package: str) -> None:
    for ep in distribution(package).entry_points:
        if ep.group in ("roadloop.verbs", "roadloop.bag_verbs"):
            assert ep.load() is not None, ep
