"""The semantic bird's-eye view: classes land in the grid cell of their metric position, nothing is lost."""

from __future__ import annotations

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
