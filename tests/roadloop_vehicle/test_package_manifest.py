"""package.xml declares what roadloop_vehicle needs at run time: every message package it publishes,
subscribes or imports, so rosdep (and the vehicle image) install them."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from pathlib import Path

from roadloop_core.config import config_dir
from roadloop_core.registry import load_registry

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "src" / "roadloop_vehicle"


def exec_depends() -> set[str]:
    root = ET.parse(PACKAGE / "package.xml").getroot()
    return {e.text or "" for e in root.iter() if e.tag in ("exec_depend", "depend")}


def imported_interface_packages() -> set[str]:
    """`from <pkg>.msg import` / `<pkg>.srv` and "pkg/msg/Name" literals in the package's sources."""
    found: set[str] = set()
    for src in (PACKAGE / "roadloop_vehicle").rglob("*.py"):
        text = src.read_text()
        found |= set(re.findall(r"^\s*(?:from|import) (\w+)\.(?:msg|srv)\b", text, re.M))
        found |= set(re.findall(r"[\"'](\w+)/(?:msg|srv)/\w+[\"']", text))
    return found


def test_every_message_package_used_is_an_exec_depend() -> None:
    reg = load_registry(config_dir() / "topics.yaml")
    used = {spec.type.split("/")[0] for spec in reg.topics.values()} | imported_interface_packages()
    assert {"ackermann_msgs", "rcl_interfaces", "rosgraph_msgs"} <= used  # the scan sees them
    missing = sorted(used - exec_depends())
    assert not missing, f"src/roadloop_vehicle/package.xml lacks <exec_depend> for {missing}"


def test_no_dependency_on_packages_not_shipped_with_rclpy_wheels() -> None:
    assert "rosidl_runtime_py" not in exec_depends()  # message classes come from roadloop_vehicle.ros.interfaces


def test_the_vehicle_image_installs_ackermann_msgs() -> None:
    """Jazzy's ros-base image has no ackermann_msgs: without it drive_node would not start in the image."""
    assert '"ros-${ROS_DISTRO}-ackermann-msgs"' in (REPO / "docker" / "vehicle.Dockerfile").read_text()
