"""The messages the pipeline publishes, built with the rosbags typestore (the bag is the wire)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
from rosbags.typesys.store import Typestore

from roadloop_core.stamps import header
from roadloop_vehicle.control.controller import Command

__all__ = [
    "EGO_FRAME",
    "Emit",
    "command_msg",
    "diagnostics_msg",
    "trajectory_msg",
    "waypoints_from_path",
]


EGO_FRAME = "base_link"  # the frame of the trajectory and of the commands


class Emit:
    """A message a stage sends: its registry role, and the message (a typestore object) to serialize.

    `Emit.later(role, make)` builds the message only when `msg` is first read: the drive node publishes
    a frame's command_raw (what the actuators wait on) before the trajectory is even built.
    """

    __slots__ = ("_make", "_msg", "role")

    def __init__(self, role: str, msg: Any) -> None:
        self.role = role
        self._msg = msg
        self._make: Callable[[], Any] | None = None

    @classmethod
    def later(cls, role: str, make: Callable[[], Any]) -> Emit:
        emit = cls(role, None)
        emit._make = make
        return emit

    @property
    def msg(self) -> Any:
        if self._make is not None:
            self._msg, self._make = self._make(), None
        return self._msg

    def __repr__(self) -> str:
        return f"Emit({self.role!r}, {self.msg!r})"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Emit) and (self.role, self.msg) == (other.role, other.msg)

    __hash__ = None  # type: ignore[assignment]  # equal by message, which is mutable


def trajectory_msg(store: Typestore, stamp_ns: int, waypoints: npt.NDArray[np.float32], frame_id: str) -> Any:
    """nav_msgs/Path of ego-frame waypoints (x forward, y left)."""
    T = store.types
    hdr = header(store, stamp_ns, frame_id)
    poses = [
        T["geometry_msgs/msg/PoseStamped"](
            header=hdr,
            pose=T["geometry_msgs/msg/Pose"](
                position=T["geometry_msgs/msg/Point"](x=float(x), y=float(y), z=0.0),
                orientation=T["geometry_msgs/msg/Quaternion"](x=0.0, y=0.0, z=0.0, w=1.0),
            ),
        )
        for x, y in waypoints
    ]
    return T["nav_msgs/msg/Path"](header=hdr, poses=poses)


def waypoints_from_path(msg: Any) -> npt.NDArray[np.float32]:
    return np.array([(p.pose.position.x, p.pose.position.y) for p in msg.poses], dtype=np.float32).reshape(-1, 2)


def command_msg(store: Typestore, stamp_ns: int, cmd: Command, frame_id: str) -> Any:
    """AckermannDriveStamped. Per ackermann_msgs, acceleration, jerk and steering_angle_velocity are
    magnitudes (limits for reaching `speed`/`steering_angle`), so the signed internal values go out as abs."""
    T = store.types
    drive = T["ackermann_msgs/msg/AckermannDrive"](
        steering_angle=float(cmd.steering_angle),
        steering_angle_velocity=abs(float(cmd.steering_angle_velocity)),
        speed=float(cmd.speed),
        acceleration=abs(float(cmd.acceleration)),
        jerk=abs(float(cmd.jerk)),
    )
    return T["ackermann_msgs/msg/AckermannDriveStamped"](header=header(store, stamp_ns, frame_id), drive=drive)


def diagnostics_msg(store: Typestore, stamp_ns: int, statuses: Sequence[tuple[int, str, str, dict[str, str]]]) -> Any:
    """diagnostic_msgs/DiagnosticArray from (level, name, message, key/values) tuples."""
    T = store.types
    status = [
        T["diagnostic_msgs/msg/DiagnosticStatus"](
            level=level,
            name=name,
            message=message,
            hardware_id="roadloop",
            values=[T["diagnostic_msgs/msg/KeyValue"](key=k, value=v) for k, v in values.items()],
        )
        for level, name, message, values in statuses
    ]
    return T["diagnostic_msgs/msg/DiagnosticArray"](header=header(store, stamp_ns, ""), status=status)
