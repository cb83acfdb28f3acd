"""Messages decoded on first use, stamps read straight from the CDR bytes.

The builder reads every IMU and odometry message (and camera frame) but a frame uses only the
few around its stamp (and its label horizon), so decoding them all would cost more than
everything else the builder does. A LazyMessage carries the header stamp (the first
field of every message the builder reads: Image, Imu, Odometry, Path,
AckermannDriveStamped) and deserialises the rest when an attribute is first read.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Mapping
from typing import Any

from rosbags.typesys.store import Typestore

from roadloop_core.bag import BagReader

__all__ = ["HEADER_FIRST", "LazyMessage", "cdr_header_stamp_ns", "read_roles"]

_LE = struct.Struct("<iI")
_BE = struct.Struct(">iI")


def cdr_header_stamp_ns(data: bytes | memoryview) -> int:
    """`header.stamp` of a CDR-encoded message whose first field is a std_msgs/Header."""
    if len(data) < 12:
        raise ValueError(f"{len(data)} bytes cannot hold a CDR header stamp")
    sec, nanosec = (_LE if data[1] == 1 else _BE).unpack_from(data, 4)
    return int(sec) * 1_000_000_000 + int(nanosec)


class LazyMessage:
    """Stands in for a decoded message; any attribute access decodes it (once)."""

    __slots__ = ("_data", "_msg", "_store", "_typename", "stamp_ns")

    def __init__(self, store: Typestore, typename: str, data: bytes | memoryview) -> None:
        self._store = store
        self._typename = typename
        self._data = data
        self._msg: Any = None
        self.stamp_ns = cdr_header_stamp_ns(data)

    def decoded(self) -> Any:
        if self._msg is None:
            # a memoryview: rosbags slices off the CDR header without copying, so arrays (pixels) stay views
            self._msg = self._store.deserialize_cdr(memoryview(self._data), self._typename)
            self._data = b""
        return self._msg

    def __getattr__(self, name: str) -> Any:
        return getattr(self.decoded(), name)


# types whose first field is a std_msgs/Header (so the stamp can be read without decoding)
HEADER_FIRST = frozenset(
    {
        "sensor_msgs/msg/Image",
        "sensor_msgs/msg/Imu",
        "sensor_msgs/msg/NavSatFix",
        "nav_msgs/msg/Odometry",
        "nav_msgs/msg/Path",
        "ackermann_msgs/msg/AckermannDriveStamped",
    }
)


def read_roles(bag: BagReader, store: Typestore, role_of: Mapping[str, str]) -> Iterator[tuple[str, int, Any]]:
    """(role, receive ns, message) for every message of the topics in `role_of` (topic -> role), in bag order.

    Registry types are the distro's (+ ackermann): they are decoded with the process-wide `store`,
    whose compiled deserialisers outlive a bag, and only when read (a LazyMessage: most IMU and
    odometry messages never are, nor the camera frames sub-sampling drops; an image that is read is
    a view of the bag's bytes); anything else is decoded by the bag's own typestore.
    """
    for raw in bag.messages(topics=sorted(role_of)):
        if raw.typename in store.fielddefs and raw.typename in HEADER_FIRST:
            yield role_of[raw.topic], raw.timestamp_ns, LazyMessage(store, raw.typename, raw.data)
        else:
            yield role_of[raw.topic], raw.timestamp_ns, bag.decode(raw)
