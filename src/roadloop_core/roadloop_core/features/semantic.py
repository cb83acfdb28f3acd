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

from dataclasses import dataclass
from functools import lru_cache

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


@dataclass(frozen=True)
class _Cells:
    """Where the grid's cells fall in a camera frame of one size, worked out once per (spec, frame size).

    Per axis: the crop [lo, hi) of camera pixels under the grid; the reduceat starts of the cells that
    begin inside the crop (cell i spans start[i]..start[i + 1], the last one to the crop's end); and
    which cells are empty once clipped to the frame (outside it: never set).
    """

    rows: tuple[int, int]
    cols: tuple[int, int]
    row_starts: np.ndarray
    col_starts: np.ndarray
    row_empty: np.ndarray
    col_empty: np.ndarray


def _axis(edges: np.ndarray, size: int) -> tuple[tuple[int, int], np.ndarray, np.ndarray]:
    clipped = np.clip(edges, 0, size)
    lo, hi = int(clipped[0]), int(clipped[-1])
    local = clipped - lo
    starts = local[:-1][local[:-1] < hi - lo]  # a cell starting at the crop's end (or past it) is empty
    empty = local[1:] <= local[:-1]
    starts.setflags(write=False)
    empty.setflags(write=False)
    return (lo, hi), starts, empty


@lru_cache(maxsize=8)
def _cells(spec: ObservationSpec, height: int, width: int) -> _Cells:
    ppm = spec.bev_px_per_m
    cols = _edges(spec.image_width, -spec.bev_behind_m, spec.bev_ahead_m, spec.bev_ego_col, ppm, 1.0)
    rows = _edges(spec.image_height, -spec.bev_half_width_m, spec.bev_half_width_m, spec.bev_ego_row, ppm, -1.0)
    rows = np.maximum(rows, np.concatenate([rows[:1], rows[:-1] + 1]))  # every cell at least one pixel
    cols = np.maximum(cols, np.concatenate([cols[:1], cols[:-1] + 1]))
    row_span, row_starts, row_empty = _axis(rows, height)
    col_span, col_starts, col_empty = _axis(cols, width)
    return _Cells(row_span, col_span, row_starts, col_starts, row_empty, col_empty)


def _pool(masks: np.ndarray, cells: _Cells, spec: ObservationSpec) -> np.ndarray:
    """(image_height, image_width, k) bool: whether any pixel of each cell is set, for each of the k
    (h, w) masks of the crop (max pooling as two reduceat passes, rows then columns)."""
    out = np.zeros((spec.image_height, spec.image_width, masks.shape[2]), dtype=bool)
    if masks.shape[0] == 0 or masks.shape[1] == 0:  # the grid lies wholly outside the frame
        return out
    by_row = np.logical_or.reduceat(masks, cells.row_starts, axis=0)
    out[: len(cells.row_starts), : len(cells.col_starts)] = np.logical_or.reduceat(by_row, cells.col_starts, axis=1)
    out[cells.row_empty] = False  # reduceat gives an empty range its start pixel: such a cell sees nothing
    out[:, cells.col_empty] = False
    return out


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
    cells = _cells(spec, pixels.shape[0], pixels.shape[1])
    # Only the pixels under the grid are classified: a large camera (1280x720) costs what the grid's
    # metres cover, not its whole frame.
    crop = pixels[cells.rows[0] : cells.rows[1], cells.cols[0] : cells.cols[1]]
    r, g, b = crop[..., 0], crop[..., 1], crop[..., 2]
    # channel by channel (numpy's max/min over a length-3 axis costs ~40x more per pixel); in uint8, where
    # hi - lo cannot wrap (hi >= lo)
    hi, lo = np.maximum(np.maximum(r, g), b), np.minimum(np.minimum(r, g), b)
    spread = hi - lo
    masks = np.empty((*crop.shape[:2], 2), dtype=bool)
    np.logical_and(lo >= 200, spread < 40, out=masks[..., 0])  # road: near-white, unsaturated
    np.logical_or(spread >= 60, hi < 80, out=masks[..., 1])  # vehicles: saturated or dark
    out = np.empty((spec.image_height, spec.image_width, 3), dtype=np.uint8)
    np.multiply(_pool(masks, cells, spec), np.uint8(255), out=out[..., :2])
    np.multiply(_route_channel(route_ego, spec), np.uint8(255), out=out[..., 2])
    return out
