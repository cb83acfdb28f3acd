from __future__ import annotations

import numpy as np
import pytest

from roadloop_core.codec import CodecError
from roadloop_core.features import FeatureError, model_image, resize_box

from .msgs import image

RNG = np.random.default_rng(0)
IMG = RNG.integers(0, 256, size=(6, 8, 3), dtype=np.uint8)


@pytest.mark.parametrize(
    ("src", "out_hw", "expected"),
    [
        (IMG, (6, 8), IMG),  # same size: unchanged
        (IMG, (3, 4), (IMG.reshape(3, 2, 4, 2, 3).astype(np.int64).sum(axis=(1, 3)) + 2) // 4),  # exact 2x2 means
        (IMG, (6, 16), np.repeat(IMG, 2, axis=1)),  # 2x wider: nearest column
        (IMG, (12, 8), np.repeat(IMG, 2, axis=0)),  # 2x taller: nearest row
        (IMG, (1, 1), (IMG.reshape(-1, 3).astype(np.int64).sum(axis=0)[None, None] + 24) // 48),  # global mean
    ],
)
def test_resize_box_table(src: np.ndarray, out_hw: tuple[int, int], expected: np.ndarray) -> None:
    out = resize_box(src, *out_hw)
    assert out.dtype == np.uint8
    assert out.shape == (*out_hw, 3)
    np.testing.assert_array_equal(out, expected.astype(np.uint8))


def test_resize_box_uneven_ratio_covers_every_source_pixel() -> None:
    ones = np.full((7, 5, 3), 200, np.uint8)
    out = resize_box(ones, 3, 2)
    assert out.shape == (3, 2, 3)
    assert (out == 200).all()


@pytest.mark.parametrize(
    ("encoding", "array", "expected"),
    [
        ("rgb8", IMG, IMG),
        ("bgr8", IMG, IMG[:, :, ::-1]),
        ("rgba8", np.dstack([IMG, np.full(IMG.shape[:2], 9, np.uint8)]), IMG),
        ("bgra8", np.dstack([IMG[:, :, ::-1], np.full(IMG.shape[:2], 9, np.uint8)]), IMG),
        ("mono8", IMG[:, :, 0], np.repeat(IMG[:, :, :1], 3, axis=2)),
    ],
)
def test_model_image_encodings(encoding: str, array: np.ndarray, expected: np.ndarray) -> None:
    out = model_image(image(0, array, encoding), *IMG.shape[:2])
    assert out.flags.c_contiguous and out.dtype == np.uint8
    np.testing.assert_array_equal(out, expected)


def test_row_padding_is_skipped() -> None:
    np.testing.assert_array_equal(model_image(image(0, IMG, pad=5), 6, 8), IMG)


def test_mono_resizes_like_its_three_channel_copy() -> None:
    mono = IMG[:, :, 0]
    np.testing.assert_array_equal(model_image(image(0, mono, "mono8"), 3, 4), resize_box(np.dstack([mono] * 3), 3, 4))


def test_unsupported_encodings_are_one_clear_error() -> None:
    with pytest.raises(FeatureError, match="encoding '16UC1' is not 8-bit"):
        model_image(image(0, IMG[:, :, :2].copy(), "16UC1"), 6, 8)
    with pytest.raises(CodecError, match="encoding 'yuv422' is not supported"):
        model_image(image(0, IMG, "yuv422"), 6, 8)


def test_short_buffer_is_an_error() -> None:
    msg = image(0, IMG)
    msg.height = 10
    with pytest.raises(CodecError, match="do not fit the size"):
        model_image(msg, 6, 8)


def _naive_box(img: np.ndarray, height: int, width: int) -> np.ndarray:
    """Each output pixel: the rounded mean of its source range (nearest pixel when upscaling), one by one."""
    h, w = img.shape[:2]
    out = np.zeros((height, width, img.shape[2]), np.uint8)
    for i in range(height):
        r0 = i * h // height
        r1 = max((i + 1) * h // height, r0 + 1)
        for j in range(width):
            c0 = j * w // width
            c1 = max((j + 1) * w // width, c0 + 1)
            block = img[r0:r1, c0:c1].astype(np.int64)
            n = block.shape[0] * block.shape[1]
            out[i, j] = (block.sum(axis=(0, 1)) + n // 2) // n
    return out


@pytest.mark.parametrize(
    ("src_hw", "out_hw"),
    [
        ((45, 80), (4, 4)),
        ((720 // 8, 1280 // 8), (8, 8)),
        ((720, 1280), (32, 64)),  # a car's front camera to the model size: uint16 rows, uint32 boxes
        ((37, 23), (5, 7)),
        ((97, 61), (9, 13)),
        ((5, 7), (9, 3)),
    ],
)
def test_resize_box_equals_the_per_pixel_definition(src_hw: tuple[int, int], out_hw: tuple[int, int]) -> None:
    """The fast paths (one reduction per row phase, column reduceat, k column gathers) against the definition."""
    img = RNG.integers(0, 256, size=(*src_hw, 3), dtype=np.uint8)
    for view in (img, img[:, :, ::-1]):  # a bgr view: negative strides
        np.testing.assert_array_equal(resize_box(view, *out_hw), _naive_box(view, *out_hw))
