"""Messages decoded on first use, stamps read straight from the CDR bytes.

The builder reads every IMU and odometry message but a frame uses only the few
around its stamp (and its label horizon), so decoding them all would cost more than
everything else the builder does. A LazyMessage carries the header stamp (the first
field of every message the builder reads: Image, Imu, Odometry, Path,
AckermannDriveStamped) and deserialises the rest when an attribute is first read.
"""

from __future__ import annotations

import struct
from types import SimpleNamespace
from typing import Any

import numpy as np
from rosbags.typesys.store import Typestore

__all__ = ["ImageView", "LazyMessage", "cdr_header_stamp_ns", "parse_image"]

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
            self._msg = self._store.deserialize_cdr(self._data, self._typename)
            self._data = b""
        return self._msg

    def __getattr__(self, name: str) -> Any:
        return getattr(self.decoded(), name)


class ImageView:
    """A sensor_msgs/Image read from little-endian CDR with `data` a view of the bytes (no copy)."""

    __slots__ = ("data", "encoding", "header", "height", "is_bigendian", "step", "width")

    def __init__(self, header: Any, height: int, width: int, encoding: str, is_bigendian: int, step: int) -> None:
        self.header = header
        self.height = height
        self.width = width
        self.encoding = encoding
        self.is_bigendian = is_bigendian
        self.step = step
        self.data: np.ndarray = np.empty(0, np.uint8)


_U32 = struct.Struct("<I")
_2U32 = struct.Struct("<II")


def _align4(pos: int) -> int:
    return 4 + ((pos - 4 + 3) & ~3)  # CDR alignment counts from after the 4-byte encapsulation header


def parse_image(data: bytes | memoryview) -> ImageView | None:
    """The fields of a CDR sensor_msgs/Image without copying its pixels (rosbags copies ~300 us per
    VGA frame); None if the bytes are not plain little-endian CDR of a consistent Image, so the caller
    falls back to the typestore (which then reports what is wrong)."""
    buf = memoryview(data).cast("B") if isinstance(data, memoryview) else memoryview(data)
    try:
        if buf[0] != 0 or buf[1] != 1:
            return None
        sec, nanosec = _LE.unpack_from(buf, 4)
        (n,) = _U32.unpack_from(buf, 12)
        frame_id = bytes(buf[16 : 16 + max(n - 1, 0)]).decode()
        pos = _align4(16 + n)
        height, width = _2U32.unpack_from(buf, pos)
        (n,) = _U32.unpack_from(buf, pos + 8)
        encoding = bytes(buf[pos + 12 : pos + 12 + max(n - 1, 0)]).decode()
        pos += 12 + n
        is_bigendian = buf[pos]
        pos = _align4(pos + 1)
        (step,) = _U32.unpack_from(buf, pos)
        (count,) = _U32.unpack_from(buf, pos + 4)
        pos += 8
    except (IndexError, struct.error, UnicodeDecodeError):
        return None
    if pos + count > len(buf) or count < step * height:
        return None
    stamp = SimpleNamespace(sec=sec, nanosec=nanosec)
    view = ImageView(SimpleNamespace(stamp=stamp, frame_id=frame_id), height, width, encoding, is_bigendian, step)
    view.data = np.frombuffer(buf, dtype=np.uint8, count=count, offset=pos)
    return view
