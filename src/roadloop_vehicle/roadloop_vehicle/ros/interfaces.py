"""ROS 2 message classes from type names (`sensor_msgs/msg/Image` -> sensor_msgs.msg.Image), without rclpy.

What rosidl_runtime_py.utilities.get_message does, which is not on PyPI: the generated
Python package of an interface is `<pkg>.msg` (or `.srv`), the class its last name part.
rclpy needs the class even for raw (bytes) publishers and subscriptions: it carries the
typesupport that names the DDS type.
"""

from __future__ import annotations

import importlib
from functools import cache
from typing import Any

from roadloop_vehicle.errors import InterfaceError

__all__ = ["message_class"]

_KINDS = ("msg", "srv", "action")


@cache
def message_class(typename: str, topic: str = "") -> type[Any]:
    """The generated class of `typename` (pkg/msg/Name; pkg/srv/Name_Event for service events).

    InterfaceError, one line naming the topic, when the interface package is not installed.
    """
    where = f"{topic} ({typename})" if topic else typename
    parts = typename.split("/")
    if len(parts) != 3 or parts[1] not in _KINDS or not all(parts):
        raise InterfaceError(f"{where}: not a ROS 2 interface type name (expected pkg/msg/Name)")
    pkg, kind, name = parts
    try:
        module = importlib.import_module(f"{pkg}.{kind}")
    except ImportError as err:
        raise InterfaceError(
            f"{where}: its interface package {pkg} is not installed here ({err}); install "
            f"ros-<distro>-{pkg.replace('_', '-')} on a ROS install (`make setup` builds ackermann_msgs into the venv)"
        ) from err
    if kind == "srv" and name.endswith(("_Event", "_Request", "_Response")):
        service, _, part = name.rpartition("_")
        cls = getattr(getattr(module, service, None), part, None)
    else:
        cls = getattr(module, name, None)
    if not isinstance(cls, type):
        raise InterfaceError(f"{where}: the installed {pkg}.{kind} has no {name}")
    return cls
