"""The semantic bird's-eye view: classes land in the grid cell of their metric position, nothing is lost."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.features.errors import FeatureError
from roadloop_core.features.semantic import semantic_bev

REPO = Path(__file__).resolve().parents[3]
GREY, WHITE, BLUE = (100, 100, 100), (255, 255, 255), (100, 200, 255)


def _spec(**kw: float) -> ObservationSpec:
    base: dict[str, float] = dict(
        bev_px_per_m=2.0, bev_ego_col=28.0, bev_ego_row=28.0, bev_ahead_m=80.0, bev_behind_m=12.0, bev_half_width_m=12.0
    )
    base.update(kw)
    return ObservationSpec(image_mode="semantic", image_width=64, image_height=32, **base)  # type: ignore[arg-type]


def _raster() -> np.ndarray:
    img = np.empty((56, 224, 3), dtype=np.uint8)
    img[:] = GREY
    return img


def _cell(spec: ObservationSpec, x: float, y: float) -> tuple[int, int]:
    dx = (spec.bev_ahead_m + spec.bev_behind_m) / spec.image_width
    dy = 2 * spec.bev_half_width_m / spec.image_height
    return int((spec.bev_half_width_m - y) // dy), int((x + spec.bev_behind_m) // dx)


def test_a_one_pixel_car_ahead_is_kept_in_its_cell() -> None:
    spec = _spec()
    img = _raster()
    # a car 50 m ahead, 4 m to the left: camera pixel (col 28 + 100, row 28 - 8)
    img[20, 128] = BLUE
    out = semantic_bev(img, None, spec)
    assert out.shape == (32, 64, 3) and out.dtype == np.uint8
    hits = np.argwhere(out[..., 1] > 0)
    assert [tuple(h) for h in hits] == [_cell(spec, 50.25, 3.75)]
    assert not out[..., 0].any() and not out[..., 2].any()


def test_lane_markings_and_route_channels() -> None:
    spec = _spec()
    img = _raster()
    img[20, :] = WHITE  # a marking 4 m left of the ego along the whole view
    route = np.array([[-20.0, 0.0], [100.0, 0.0]])  # straight ahead through the ego
    out = semantic_bev(img, route, spec)
    road_rows = set(np.argwhere(out[..., 0] > 0)[:, 0].tolist())
    assert road_rows == {_cell(spec, 0.0, 3.75)[0]}
    assert out[..., 0].all(axis=1).sum() == 1  # the whole row: nothing lost to pooling
    route_cells = np.argwhere(out[..., 2] > 0)
    assert set(route_cells[:, 0].tolist()) == {_cell(spec, 0.0, -0.01)[0]}
    assert len(route_cells) == 64  # it spans the grid from behind to ahead


def test_outside_the_camera_is_empty_and_bad_images_are_refused() -> None:
    spec = _spec(bev_ahead_m=200.0)  # further ahead than the 224-px camera sees
    img = _raster()
    img[:, 200:] = BLUE
    out = semantic_bev(img, None, spec)
    assert out[..., 1].any() and not out[:, -5:, 1].any()
    with pytest.raises(FeatureError, match="uint8"):
        semantic_bev(img.astype(np.float32), None, spec)


def test_the_view_matches_the_simulator_camera() -> None:
    """The calibration in dataset.yaml is the camera scenarios.yaml renders (one is not changed alone)."""
    from roadloop_core.config import load_yaml

    obs = load_yaml(REPO / "config" / "dataset.yaml")["observation"]
    cam = load_yaml(REPO / "config" / "scenarios.yaml")["simulation"]["camera"]
    if obs.get("image_mode") != "semantic":
        pytest.skip("dataset.yaml does not use the semantic view")
    assert obs["bev_px_per_m"] == cam["scaling"]
    assert obs["bev_ego_col"] == cam["centering"][0] * cam["width"]
    assert obs["bev_ego_row"] == cam["centering"][1] * cam["height"]
    assert cam["align_with_ego"]
    assert (obs["bev_behind_m"] + obs["bev_ahead_m"]) * cam["scaling"] <= cam["width"]


def _reference(img: np.ndarray, spec: ObservationSpec) -> np.ndarray:
    """The two pooled channels cell by cell over the whole frame: a cell spans the camera pixels from its
    near edge to its far edge (floored), at least one pixel past the previous cell's unwidened edge."""
    rgb = img.astype(np.int16)
    hi, lo = rgb.max(axis=2), rgb.min(axis=2)
    masks = ((lo >= 200) & (hi - lo < 40), (hi - lo >= 60) | (hi < 80))
    dx = (spec.bev_ahead_m + spec.bev_behind_m) / spec.image_width
    dy = 2 * spec.bev_half_width_m / spec.image_height

    def edge_row(r: int) -> int:
        return int(np.floor(spec.bev_ego_row - (spec.bev_half_width_m - r * dy) * spec.bev_px_per_m))

    def edge_col(c: int) -> int:
        return int(np.floor(spec.bev_ego_col + (c * dx - spec.bev_behind_m) * spec.bev_px_per_m))

    def span(edge: Callable[[int], int], i: int, size: int) -> slice:
        start = edge(i) if i == 0 else max(edge(i), edge(i - 1) + 1)
        stop = max(edge(i + 1), edge(i) + 1)
        return slice(min(max(start, 0), size), min(max(stop, 0), size))

    h, w = hi.shape
    out = np.zeros((spec.image_height, spec.image_width, 2), dtype=np.uint8)
    for r in range(spec.image_height):
        for c in range(spec.image_width):
            rs, cs = span(edge_row, r, h), span(edge_col, c, w)
            for k, m in enumerate(masks):
                out[r, c, k] = 255 * bool(m[rs, cs].any())
    return out


@pytest.mark.parametrize(
    ("shape", "kw"),
    [
        ((56, 224), {}),  # the simulator's camera
        ((720, 1280), {}),  # a large frame: only the grid's pixels are read
        ((720, 1280), {"bev_ego_col": 600.0, "bev_ego_row": 360.0, "bev_px_per_m": 7.5}),
        ((40, 100), {"bev_ahead_m": 200.0}),  # the grid past the frame's right and bottom edges
        ((56, 224), {"bev_ego_col": -30.0, "bev_ego_row": -20.0}),  # and past its left and top
        ((56, 224), {"bev_ego_col": 400.0}),  # the grid wholly outside the frame
        ((56, 224), {"bev_px_per_m": 0.5}),  # cells narrower than a pixel: each widened to one
    ],
)
def test_pooled_channels_equal_a_cell_by_cell_reference(shape: tuple[int, int], kw: dict[str, float]) -> None:
    spec = _spec(**kw)
    rng = np.random.default_rng(len(kw) + shape[0])
    img = np.full((*shape, 3), GREY, dtype=np.uint8)
    for colour in (WHITE, BLUE, (30, 30, 30)):
        at = rng.integers(0, [shape[0], shape[1]], size=(shape[0] * shape[1] // 400 + 3, 2))
        img[at[:, 0], at[:, 1]] = colour
    np.testing.assert_array_equal(semantic_bev(img, None, spec)[..., :2], _reference(img, spec))
