"""DriveFrame: what the drive stage hands the safety stage for one observation frame, and its wire form.

Everything the supervisor judges travels in one message, so nothing is paired up across topics
(a trajectory arriving after its command would skip the NaN and jump checks) and nothing is
re-derived on the far side (Ackermann's acceleration is a magnitude, so its sign was guessed from
odometry; its float32 fields rounded the controller's values). The frame goes out on the registry's
`command_raw` role as `rcl_interfaces/msg/ParameterEvent`: a standard ROS 2 type (every install and
typestore has it) holding a stamp and named, typed values -- float64 numbers and arrays, a bool, a
string -- so the controller's command, the policy's waypoints and target speed, and the model's
availability and label cross bit for bit. `node` names the schema, so a publisher of another
layout is refused with one line, not misread.

    stamp                  the frame's sensor stamp (the camera message's header stamp)
    node                   "roadloop.drive_frame.v1"
    new_parameters:
      model                STRING      label of the model that served the frame ("" without one)
      model_available      BOOL
      command              DOUBLE_ARRAY steering_angle, speed, acceleration (signed), jerk,
                                        steering_angle_velocity -- absent without a model
      target_speed         DOUBLE       the policy's -- absent without a model
      waypoints            DOUBLE_ARRAY x0, y0, x1, y1, ... (ego frame) -- absent without a model
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from rosbags.typesys.store import Typestore

from roadloop_core.errors import ConfigError
from roadloop_core.registry import TopicRegistry
from roadloop_core.stamps import ns_to_stamp, stamp_to_ns
from roadloop_vehicle.control.controller import Command
from roadloop_vehicle.errors import InterfaceError

__all__ = ["FRAME_SCHEMA", "FRAME_TYPE", "DriveFrame", "check_frame_role", "decode_frame", "encode_frame"]

FRAME_TYPE = "rcl_interfaces/msg/ParameterEvent"
FRAME_SCHEMA = "roadloop.drive_frame.v1"
# rcl_interfaces/msg/ParameterType
_BOOL, _DOUBLE, _STRING, _DOUBLE_ARRAY = 1, 3, 4, 8
_COMMAND_FIELDS = ("steering_angle", "speed", "acceleration", "jerk", "steering_angle_velocity")


def _empty(dtype: type[Any]) -> npt.NDArray[Any]:
    a = np.zeros(0, dtype)
    a.setflags(write=False)
    return a


# a ParameterValue's unset fields: made once (serialization only reads the arrays), not per frame
_UNSET_VALUE: dict[str, Any] = {
    "bool_value": False,
    "integer_value": 0,
    "double_value": 0.0,
    "string_value": "",
    "byte_array_value": _empty(np.uint8),
    "bool_array_value": _empty(np.bool_),
    "integer_array_value": _empty(np.int64),
    "double_array_value": _empty(np.float64),
}


@dataclass(frozen=True)
class DriveFrame:
    stamp_ns: int  # the frame's sensor stamp
    model: str | None  # label of the model that served it (None: no model loaded)
    model_available: bool
    command: Command | None  # the controller's, signed (None: no model served the frame)
    target_speed: float | None = None  # the policy's target speed
    waypoints: npt.NDArray[np.float32] | None = None  # (K, 2) ego frame, as the policy emitted them


def check_frame_role(registry: TopicRegistry) -> None:
    """ConfigError, one line, when the registry's `command_raw` role is not of the drive frame's type."""
    spec = registry["command_raw"]
    if spec.type != FRAME_TYPE:
        raise ConfigError(
            f"{registry.source or 'topic registry'}: topics.command_raw.type is {spec.type}; the drive frames "
            f"between drive_node and safety_node are {FRAME_TYPE}"
        )


def encode_frame(store: Typestore, frame: DriveFrame) -> Any:
    """The ParameterEvent message of `frame` (serialized with the registry's `command_raw` type)."""
    T = store.types
    value_t, param_t = T["rcl_interfaces/msg/ParameterValue"], T["rcl_interfaces/msg/Parameter"]

    def value(kind: int, **set_: Any) -> Any:
        return value_t(**{**_UNSET_VALUE, "string_array_value": [], "type": kind, **set_})

    params = [
        param_t(name="model", value=value(_STRING, string_value=frame.model or "")),
        param_t(name="model_available", value=value(_BOOL, bool_value=bool(frame.model_available))),
    ]
    if frame.command is not None:
        c = frame.command
        numbers = np.array([getattr(c, f) for f in _COMMAND_FIELDS], dtype=np.float64)
        params.append(param_t(name="command", value=value(_DOUBLE_ARRAY, double_array_value=numbers)))
    if frame.target_speed is not None:
        params.append(param_t(name="target_speed", value=value(_DOUBLE, double_value=float(frame.target_speed))))
    if frame.waypoints is not None:
        flat = np.asarray(frame.waypoints, dtype=np.float64).reshape(-1)
        params.append(param_t(name="waypoints", value=value(_DOUBLE_ARRAY, double_array_value=flat)))
    return T[FRAME_TYPE](
        stamp=ns_to_stamp(frame.stamp_ns, store),
        node=FRAME_SCHEMA,
        new_parameters=params,
        changed_parameters=[],
        deleted_parameters=[],
    )


def decode_frame(msg: Any, topic: str = "command_raw") -> DriveFrame:
    """The DriveFrame of a ParameterEvent `encode_frame` made; InterfaceError naming `topic` and the field."""
    if msg.node != FRAME_SCHEMA:
        raise InterfaceError(f"{topic}: not a drive frame (node {msg.node!r}, expected {FRAME_SCHEMA!r})")
    values = {p.name: p.value for p in msg.new_parameters}

    def get(name: str, kind: int) -> Any | None:
        v = values.get(name)
        if v is None:
            return None
        if int(v.type) != kind:
            raise InterfaceError(f"{topic}: field {name} has parameter type {int(v.type)}, expected {kind}")
        return v

    model = get("model", _STRING)
    available = get("model_available", _BOOL)
    if model is None or available is None:
        raise InterfaceError(f"{topic}: drive frame without its model/model_available fields")
    command: Command | None = None
    cmd = get("command", _DOUBLE_ARRAY)
    if cmd is not None:
        numbers = [float(x) for x in cmd.double_array_value]
        if len(numbers) != len(_COMMAND_FIELDS):
            raise InterfaceError(
                f"{topic}: field command holds {len(numbers)} numbers, expected {len(_COMMAND_FIELDS)}"
            )
        command = Command(**dict(zip(_COMMAND_FIELDS, numbers, strict=True)))
    speed = get("target_speed", _DOUBLE)
    wp = get("waypoints", _DOUBLE_ARRAY)
    waypoints = None
    if wp is not None:
        flat = np.asarray(wp.double_array_value, dtype=np.float64)
        if flat.size % 2:
            raise InterfaceError(f"{topic}: field waypoints holds {flat.size} numbers, not (x, y) pairs")
        waypoints = flat.astype(np.float32).reshape(-1, 2)
    return DriveFrame(
        stamp_ns=stamp_to_ns(msg.stamp),
        model=model.string_value or None,
        model_available=bool(available.bool_value),
        command=command,
        target_speed=float(speed.double_value) if speed is not None else None,
        waypoints=waypoints,
    )
