"""The message type system: a rosbags typestore (Jazzy default, Humble selectable)
extended with the types the stores lack, registered from their .msg text."""

from __future__ import annotations

from functools import cache
from typing import Any

from rosbags.typesys import Stores, get_types_from_msg, get_typestore
from rosbags.typesys.store import Typestore

from roadloop_core.errors import TypesysError

__all__ = [
    "EXTRA_MSG_DEFINITIONS",
    "STORES",
    "make_typestore",
    "register_definition",
    "register_msgdef",
    "typestore_for",
]

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
        types = _fix_srv_names(types)
        store.register({k: v for k, v in types.items() if k not in store.fielddefs})
    except TypesysError:
        raise
    except Exception as err:  # rosbags raises several parser exception types
        raise TypesysError(f"{typename}: cannot parse its {encoding} definition: {err}") from err


# Service introspection (Iron+) wraps request/response in this; Humble's store lacks it.
SERVICE_EVENT_INFO = """\
uint8 REQUEST_SENT = 0
uint8 REQUEST_RECEIVED = 1
uint8 RESPONSE_SENT = 2
uint8 RESPONSE_RECEIVED = 3
uint8 event_type
builtin_interfaces/msg/Time stamp
char[16] client_gid
int64 sequence_number
"""

_SEPARATOR = "=" * 80


def _fix_srv_names(obj: Any) -> Any:
    """rosbags' .msg parser turns `pkg/srv/Name` into `pkg/srv/msg/Name`; undo that everywhere."""
    if isinstance(obj, str):
        return obj.replace("/srv/msg/", "/srv/")
    if isinstance(obj, dict):
        return {_fix_srv_names(k): _fix_srv_names(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        fixed = [_fix_srv_names(v) for v in obj]
        return fixed if isinstance(obj, list) else tuple(fixed)
    return obj


def _split_srv(text: str) -> tuple[str, str, str] | None:
    """(request, response, dependency sections) if `text` is a .srv definition, else None."""
    head, sep, deps = text.partition(_SEPARATOR)
    lines = head.splitlines()
    cut = [i for i, line in enumerate(lines) if line.strip() == "---"]
    if not cut:
        return None
    req = "\n".join(lines[: cut[0]]) + "\n"
    resp = "\n".join(lines[cut[0] + 1 : cut[1] if len(cut) > 1 else None]) + "\n"
    return req, resp, (sep + deps) if sep else ""


def register_definition(store: Typestore, typename: str, text: str, encoding: str = "ros2msg") -> None:
    """Register a type from the definition a bag carries: .msg/.idl text, or a .srv text for
    `pkg/srv/Name_Event` (service-event topics) and its `_Request`/`_Response` parts."""
    if typename in store.fielddefs:
        return
    srv = _split_srv(text) if encoding in ("msg", "ros2msg") else None
    if srv is None:
        register_msgdef(store, typename, text, encoding)
        return
    req, resp, deps = srv
    base = typename.removesuffix("_Event").removesuffix("_Request").removesuffix("_Response")
    if "service_msgs/msg/ServiceEventInfo" not in store.fielddefs:
        register_msgdef(store, "service_msgs/msg/ServiceEventInfo", SERVICE_EVENT_INFO)
    register_msgdef(store, f"{base}_Request", req + deps)
    register_msgdef(store, f"{base}_Response", resp + deps)
    event = f"service_msgs/msg/ServiceEventInfo info\n{base}_Request[<=1] request\n{base}_Response[<=1] response\n"
    register_msgdef(store, f"{base}_Event", event)
    if typename not in store.fielddefs:
        raise TypesysError(f"{typename}: a service definition only defines {base}_Event/_Request/_Response")
