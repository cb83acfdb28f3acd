"""Codec: zero-copy image views, numpy -> Image, stamps, CDR encode/decode."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from roadloop_core.codec import CodecError, decode, encode, image_to_numpy, numpy_to_image
from roadloop_core.stamps import ns_to_stamp, stamp_to_ns
from roadloop_core.typesys import typestore_for

STORE = typestore_for("jazzy")


def _image(h: int, w: int, encoding: str, step: int, data: np.ndarray[Any, Any], bigendian: int = 0) -> Any:
    return STORE.types["sensor_msgs/msg/Image"](
        header=STORE.types["std_msgs/msg/Header"](stamp=ns_to_stamp(0), frame_id="cam"),
        height=h,
        width=w,
        encoding=encoding,
        is_bigendian=bigendian,
        step=step,
        data=data,
    )


# encoding, channels, dtype, bytes per pixel
ENCODINGS = [
    ("rgb8", 3, np.uint8),
    ("bgr8", 3, np.uint8),
    ("mono8", 1, np.uint8),
    ("rgba8", 4, np.uint8),
    ("bgra8", 4, np.uint8),
    ("8UC3", 3, np.uint8),
    ("mono16", 1, np.uint16),
    ("32FC1", 1, np.float32),
]


@pytest.mark.parametrize(("encoding", "channels", "dtype"), ENCODINGS)
@pytest.mark.parametrize("pad", [0, 5])
def test_image_to_numpy_is_a_view_of_the_cdr_bytes(encoding: str, channels: int, dtype: Any, pad: int) -> None:
    rng = np.random.default_rng(0)
    h, w = 6, 7
    pixels = (rng.random((h, w, channels)) * 200).astype(dtype)
    step = w * channels * pixels.itemsize + pad
    rows = np.zeros((h, step), np.uint8)
    rows[:, : w * channels * pixels.itemsize] = pixels.reshape(h, -1).view(np.uint8)
    cdr = bytes(STORE.serialize_cdr(_image(h, w, encoding, step, rows.reshape(-1)), "sensor_msgs/msg/Image"))
    msg = decode(cdr, "sensor_msgs/msg/Image")
    arr = image_to_numpy(msg)
    rgb = min(channels, 3)  # colour comes back as RGB, alpha dropped
    assert arr.shape == (h, w, rgb)
    assert np.shares_memory(arr, msg.data)
    expected = pixels[:, :, 2::-1] if encoding.startswith("bgr") else pixels[:, :, :rgb]
    assert np.array_equal(arr, expected)
    raw = image_to_numpy(msg, as_rgb=False)
    assert np.array_equal(raw, pixels)


def test_multi_megabyte_frame_round_trip_without_copy() -> None:
    frame = np.random.default_rng(1).integers(0, 255, (720, 1280, 3), dtype=np.uint8)
    msg = numpy_to_image(frame, 1_700_000_000_123_456_789, "front")
    assert np.shares_memory(msg.data, frame)
    cdr = encode(msg)
    back = decode(cdr, "sensor_msgs/msg/Image")
    arr = image_to_numpy(back)
    assert np.shares_memory(arr, np.frombuffer(cdr, np.uint8))
    assert np.array_equal(arr, frame)
    assert stamp_to_ns(back.header.stamp) == 1_700_000_000_123_456_789
    assert (back.encoding, back.step, back.header.frame_id) == ("rgb8", 3840, "front")


@pytest.mark.parametrize(
    ("shape", "dtype", "encoding"),
    [
        ((4, 5), np.uint8, "mono8"),
        ((4, 5, 1), np.uint8, "mono8"),
        ((4, 5, 4), np.uint8, "rgba8"),
        ((4, 5), np.uint16, "mono16"),
    ],
)
def test_numpy_to_image_picks_the_encoding(shape: tuple[int, ...], dtype: Any, encoding: str) -> None:
    msg = numpy_to_image(np.zeros(shape, dtype), 0, "f")
    assert msg.encoding == encoding
    assert image_to_numpy(msg, as_rgb=False).shape == (shape[0], shape[1], shape[2] if len(shape) == 3 else 1)


@pytest.mark.parametrize(
    ("build", "fault"),
    [
        (lambda: image_to_numpy(_image(2, 2, "yuv422", 4, np.zeros(8, np.uint8))), "not supported"),
        (lambda: image_to_numpy(_image(2, 2, "rgb8", 6, np.zeros(8, np.uint8))), "do not fit"),
        (lambda: image_to_numpy(_image(2, 2, "rgb8", 5, np.zeros(12, np.uint8))), "do not fit"),
        (lambda: numpy_to_image(np.zeros((2, 2, 2), np.uint8), 0, "f"), "no default image encoding"),
        (lambda: numpy_to_image(np.zeros((2, 2, 3), np.float32), 0, "f", encoding="rgb8"), "does not match"),
        (lambda: numpy_to_image(np.zeros((2,), np.uint8), 0, "f"), "must be"),
        (lambda: decode(b"\x00\x01\x00\x00\x05", "sensor_msgs/msg/Image"), "do not decode"),
        (lambda: encode(object()), "cannot tell the type"),
    ],
)
def test_errors_are_codec_errors(build: Any, fault: str) -> None:
    with pytest.raises(CodecError, match=fault):
        build()


@pytest.mark.parametrize(
    ("ns", "sec", "nanosec"),
    [
        (0, 0, 0),
        (1, 0, 1),
        (1_999_999_999, 1, 999_999_999),
        (1_700_000_000_000_000_000, 1_700_000_000, 0),
        (-1, -1, 999_999_999),
    ],
)
def test_stamp_conversions(ns: int, sec: int, nanosec: int) -> None:
    stamp = ns_to_stamp(ns)
    assert (stamp.sec, stamp.nanosec) == (sec, nanosec)
    assert stamp_to_ns(stamp) == ns
