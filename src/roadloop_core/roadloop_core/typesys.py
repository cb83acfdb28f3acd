"""The message type system: a rosbags typestore (Jazzy default, Humble selectable)
extended with the types the stores lack, registered from their .msg text."""

from __future__ import annotations

from functools import cache

from rosbags.typesys import Stores, get_typestore, get_types_from_msg
from rosbags.typesys.store import Typestore

from roadloop_core.errors import TypesysError

__all__ = ["EXTRA_MSG_DEFINITIONS", "STORES", "make_typestore", "register_msgdef", "typestore_for"]

STORES: dict[str, Stores] = {"jazzy": Stores.ROS2_JAZZY, "humble": Stores.ROS2_HUMBLE}

# ackermann_msgs is not in any rosbags store; these are the upstream .msg texts.
EXTRA_MSG_DEFINITIONS: dict[str, str] = {
    "ackermann_msgs/msg/AckermannDrive": """\
float32 steering_angle
float32 steering_angle_velocity
float32 speed
float32 acceleration
float32 jerk
""",
    "ackermann_msgs/msg/AckermannDriveStamped": """\
std_msgs/Header header
AckermannDrive drive
""",
}


def make_typestore(distro: str = "jazzy") -> Typestore:
    """A fresh typestore for `distro` with roadloop's extra types registered."""
    try:
        store = get_typestore(STORES[distro.lower()])
    except KeyError:
        raise TypesysError(f"unknown typestore '{distro}'; choose one of: {', '.join(STORES)}") from None
    for name, text in EXTRA_MSG_DEFINITIONS.items():
        register_msgdef(store, name, text, "msg")
    return store


@cache
def typestore_for(distro: str = "jazzy") -> Typestore:
    """The shared (cached) typestore for `distro`; do not register bag-specific types into it."""
    return make_typestore(distro)


def register_msgdef(store: Typestore, typename: str, text: str, encoding: str = "msg") -> None:
    """Register `typename` (and the types its text embeds) unless the store already knows it."""
    if typename in store.fielddefs:
        return
    try:
        if encoding in ("msg", "ros2msg"):
            from rosbags.typesys import get_types_from_msg as parse
        elif encoding in ("idl", "ros2idl"):
            from rosbags.typesys import get_types_from_idl as parse  # type: ignore[assignment]
        else:
            raise TypesysError(f"{typename}: unsupported definition encoding '{encoding}'")
        types = parse(text, typename) if parse is get_types_from_msg else parse(text)  # type: ignore[call-arg]
        store.register({k: v for k, v in types.items() if k not in store.fielddefs})
    except TypesysError:
        raise
    except Exception as err:  # rosbags raises several parser exception types
        raise TypesysError(f"{typename}: cannot parse its {encoding} definition: {err}") from err
