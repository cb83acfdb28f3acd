"""Message codec: ROS 2 messages <-> numpy, CDR bytes <-> messages (time stamps: `roadloop_core.stamps`).

`image_to_numpy` returns a *view* of the message's pixel buffer (which rosbags itself
deserializes as a view into the CDR bytes), so a multi-megabyte camera frame goes from
bag bytes to an (H, W, C) array without a single copy.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from roadloop_core.errors import RoadloopError
from roadloop_core.stamps import header
from roadloop_core.typesys import typestore_for

__all__ = [
    "ENCODINGS",
    "CodecError",
    "decode",
    "encode",
    "image_to_numpy",
    "numpy_to_image",
]


class CodecError(RoadloopError):
    """A message cannot be converted (unsupported encoding, inconsistent sizes)."""


# encoding -> (channels, dtype, channel order reversed relative to RGB)
ENCODINGS: dict[str, tuple[int, str, bool]] = {
    "rgb8": (3, "uint8", False),
    "bgr8": (3, "uint8", True),
    "rgba8": (4, "uint8", False),
    "bgra8": (4, "uint8", True),
    "mono8": (1, "uint8", False),
    "8UC1": (1, "uint8", False),
    "8UC3": (3, "uint8", False),
    "mono16": (1, "uint16", False),
    "16UC1": (1, "uint16", False),
    "32FC1": (1, "float32", False),
}


def image_to_numpy(msg: Any, *, as_rgb: bool = True) -> NDArray[Any]:
    """A (H, W, C) view of `msg.data` (sensor_msgs/Image); no pixel is copied.

    Rows padded beyond width * channels (step > that) stay padded in the buffer and are
    skipped by strides. With `as_rgb` (default), colour images come back as 3 channels in
    RGB order (bgr through a negative-stride view, alpha dropped by slicing), still without
    a copy; `as_rgb=False` gives the channels as stored.
    """
    try:
        channels, dtype_name, reversed_order = ENCODINGS[msg.encoding]
    except KeyError:
        raise CodecError(f"image encoding '{msg.encoding}' is not supported ({', '.join(ENCODINGS)})") from None
    dtype = np.dtype(dtype_name).newbyteorder(">" if msg.is_bigendian else "<")
    height, width, step = int(msg.height), int(msg.width), int(msg.step)
    row = width * channels * dtype.itemsize
    buf = msg.data if isinstance(msg.data, np.ndarray) else np.frombuffer(msg.data, np.uint8)
    if step < row or buf.nbytes < step * max(height - 1, 0) + row:
        raise CodecError(
            f"image {width}x{height} {msg.encoding}: step {step} and {buf.nbytes} data bytes do not fit the size"
        )
    arr: NDArray[Any] = np.ndarray(
        shape=(height, width, channels),
        dtype=dtype,
        buffer=buf,
        offset=0,
        strides=(step, channels * dtype.itemsize, dtype.itemsize),
    )
    if as_rgb and channels >= 3:
        arr = arr[:, :, 2::-1] if reversed_order else arr[:, :, :3]
    return arr


def numpy_to_image(
    array: NDArray[Any], stamp_ns: int, frame_id: str, encoding: str | None = None, distro: str = "jazzy"
) -> Any:
    """A sensor_msgs/Image holding `array` (H, W[, C]); its data is a view when `array` is contiguous."""
    if array.ndim == 2:
        array = array[:, :, None]
    if array.ndim != 3:
        raise CodecError(f"image array must be (H, W) or (H, W, C), got shape {array.shape}")
    h, w, c = array.shape
    if encoding is None:
        by_shape = {(1, "uint8"): "mono8", (3, "uint8"): "rgb8", (4, "uint8"): "rgba8", (1, "uint16"): "mono16"}
        encoding = by_shape.get((c, array.dtype.name))
        if encoding is None:
            raise CodecError(f"no default image encoding for {c} channel(s) of {array.dtype}; pass encoding=")
    want = ENCODINGS.get(encoding)
    if want is None or want[0] != c or np.dtype(want[1]) != array.dtype.newbyteorder("="):
        raise CodecError(f"array {array.shape} {array.dtype} does not match image encoding '{encoding}'")
    contiguous = np.ascontiguousarray(array)
    store = typestore_for(distro)
    return store.types["sensor_msgs/msg/Image"](
        header=header(store, stamp_ns, frame_id),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=int(contiguous.dtype.byteorder == ">"),
        step=w * c * contiguous.dtype.itemsize,
        data=contiguous.reshape(-1).view(np.uint8),
    )


def encode(msg: Any, typename: str | None = None, distro: str = "jazzy") -> memoryview:
    """Message -> CDR bytes (little endian, as rosbag2 stores them), as a memoryview (no extra copy)."""
    name = typename or getattr(msg, "__msgtype__", None)
    if not name:
        raise CodecError(f"cannot tell the type of {type(msg).__name__}; pass typename=")
    try:
        return memoryview(typestore_for(distro).serialize_cdr(msg, name))
    except Exception as err:  # rosbags raises assorted errors for ill-typed fields
        raise CodecError(f"cannot encode {name}: {type(err).__name__}: {err}") from err


def decode(data: bytes | memoryview, typename: str, distro: str = "jazzy") -> Any:
    """CDR bytes -> message; arrays of numbers are numpy views into `data`."""
    try:
        # A memoryview: rosbags slices off the CDR header, and slicing bytes would copy the payload.
        return typestore_for(distro).deserialize_cdr(memoryview(data), typename)
    except Exception as err:  # rosbags raises assorted errors for malformed bytes
        raise CodecError(f"{len(data)} bytes do not decode as {typename}: {type(err).__name__}: {err}") from err
