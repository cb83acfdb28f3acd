"""The semantic bird's-eye view: a top-down camera raster as channels the model can read (pure numpy).

A top-down raster (highway-env's camera; on a car, a BEV perception output) is RGB with a car a few
pixels across. Box-filtering it to the model size blends a car into the grey road. Instead every model
pixel here answers three questions, each a 0/255 channel:

- channel 0, road: lane markings (near-white, unsaturated pixels);
- channel 1, vehicles: vehicle bodies and outlines (saturated or dark pixels);
- channel 2, route: the route topic's polyline (`/planning/route`), drawn in the ego frame.

The grid covers `bev_ahead_m` ahead and `bev_behind_m` behind the ego and `bev_half_width_m` to each
side (x forward = columns left to right, y left = rows top to bottom, as the camera shows it); a model
pixel is set when any camera pixel it covers is of the class (max pooling: a car stays visible however
coarse the grid). The ahead distance is the braking distance that matters (see docs/loop.md). Only
what the vehicle's topics carry is used: the camera image, the route and the ego pose.
"""

from __future__ import annotations

import numpy as np

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.features.errors import FeatureError

__all__ = ["SEMANTIC_CHANNELS", "semantic_bev"]

SEMANTIC_CHANNELS = ("road", "vehicles", "route")
_ROUTE_STEP_M = 0.25  # route polyline sampled this densely (finer than any grid cell)


def _edges(n: int, lo_m: float, hi_m: float, origin_px: float, px_per_m: float, sign: float) -> np.ndarray:
    """Camera pixel index [lo, hi) of each of `n` grid cells spanning lo_m..hi_m (metres from the ego)."""
    metres = np.linspace(lo_m, hi_m, n + 1)
    px = np.floor(origin_px + sign * metres * px_per_m).astype(np.int64)
    return px if sign > 0 else px[::-1]


def _pool(mask: np.ndarray, rows: np.ndarray, cols: np.ndarray) -> np.ndarray:
    """Whether any pixel of each (row range, col range) cell is set: an integral image, exact integers."""
    h, w = mask.shape
    integral = np.zeros((h + 1, w + 1), dtype=np.int64)
    integral[1:, 1:] = np.cumsum(np.cumsum(mask, axis=0, dtype=np.int64), axis=1)
    r = np.clip(rows, 0, h)
    c = np.clip(cols, 0, w)
    r0, r1 = r[:-1, None], r[1:, None]
    c0, c1 = c[None, :-1], c[None, 1:]
    counts = integral[r1, c1] - integral[r0, c1] - integral[r1, c0] + integral[r0, c0]
    return np.asarray(counts > 0)


def _route_channel(route_ego: np.ndarray | None, spec: ObservationSpec) -> np.ndarray:
    out = np.zeros((spec.image_height, spec.image_width), dtype=bool)
    if route_ego is None or len(route_ego) == 0:
        return out
    pts = np.asarray(route_ego, dtype=np.float64).reshape(-1, 2)
    if len(pts) > 1:
        seg = np.diff(pts, axis=0)
        n = np.maximum(1, np.ceil(np.hypot(seg[:, 0], seg[:, 1]) / _ROUTE_STEP_M).astype(np.int64))
        # segment i sampled at fractions j / n_i, j = 0 .. n_i - 1, all segments at once
        seg_of = np.repeat(np.arange(len(n)), n)
        j = np.arange(len(seg_of)) - np.repeat(np.cumsum(n) - n, n)
        pts = np.vstack([pts[seg_of] + seg[seg_of] * (j / n[seg_of])[:, None], pts[-1:]])
    dx = (spec.bev_ahead_m + spec.bev_behind_m) / spec.image_width
    dy = 2.0 * spec.bev_half_width_m / spec.image_height
    col = np.floor((pts[:, 0] + spec.bev_behind_m) / dx).astype(np.int64)
    row = np.floor((spec.bev_half_width_m - pts[:, 1]) / dy).astype(np.int64)
    ok = (col >= 0) & (col < spec.image_width) & (row >= 0) & (row < spec.image_height)
    out[row[ok], col[ok]] = True
    return out


def semantic_bev(pixels: np.ndarray, route_ego: np.ndarray | None, spec: ObservationSpec) -> np.ndarray:
    """(image_height, image_width, 3) uint8 channels road / vehicles / route from an (H, W, 3) uint8 top-down
    raster (ego facing right, at camera pixel (bev_ego_col, bev_ego_row), `bev_px_per_m`) and the route in
    the ego frame ((M, 2) metres, x forward, y left; None: an empty route channel)."""
    if pixels.ndim != 3 or pixels.shape[2] != 3 or pixels.dtype != np.uint8:
        raise FeatureError(f"semantic view: expected an (H, W, 3) uint8 image, got {pixels.shape} {pixels.dtype}")
    ppm = spec.bev_px_per_m
    cols = _edges(spec.image_width, -spec.bev_behind_m, spec.bev_ahead_m, spec.bev_ego_col, ppm, 1.0)
    rows = _edges(spec.image_height, -spec.bev_half_width_m, spec.bev_half_width_m, spec.bev_ego_row, ppm, -1.0)
    rows = np.maximum(rows, np.concatenate([rows[:1], rows[:-1] + 1]))  # every cell at least one pixel
    cols = np.maximum(cols, np.concatenate([cols[:1], cols[:-1] + 1]))
    # Only the pixels under the grid are classified: a large camera (1280x720) costs what the grid's
    # metres cover, not its whole frame (the cells' pixel ranges, shifted into the crop, are the same).
    h, w = pixels.shape[:2]
    r0, r1 = (int(np.clip(v, 0, h)) for v in (rows[0], rows[-1]))
    c0, c1 = (int(np.clip(v, 0, w)) for v in (cols[0], cols[-1]))
    crop = pixels[r0:r1, c0:c1]
    rows, cols = rows - r0, cols - c0
    r, g, b = (crop[..., k].astype(np.int16) for k in range(3))
    # channel by channel: numpy's max/min over a length-3 axis costs ~40x more per pixel
    hi, lo = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    road = (lo >= 200) & (hi - lo < 40)
    vehicles = (hi - lo >= 60) | (hi < 80)
    out = np.zeros((spec.image_height, spec.image_width, 3), dtype=np.uint8)
    out[..., 0] = _pool(road, rows, cols) * np.uint8(255)
    out[..., 1] = _pool(vehicles, rows, cols) * np.uint8(255)
    out[..., 2] = _route_channel(route_ego, spec) * np.uint8(255)
    return out
