"""FrameSynchronizer and compute_features, table-driven over small message streams."""

from __future__ import annotations

import math
from collections import Counter
from typing import Any

import numpy as np
import pytest

from roadloop_core.features import Frame, FrameSynchronizer, ObservationSpec, compute_features
from roadloop_core.features.sync import median_of_few

from .msgs import image, imu, odom, path

MS = 1_000_000
PIX = np.full((8, 8, 3), 77, np.uint8)
ROUTE = [(0.0, 0.0), (100.0, 0.0)]
SPEC = ObservationSpec(image_width=4, image_height=2, sync_slop_s=0.1, route_lookahead_m=10.0)


def odometry_every(step_ms: int, start_ms: int, end_ms: int, v: float = 10.0) -> list[tuple[str, Any]]:
    return [("odometry", odom(t * MS, x=v * t / 1000, v=v)) for t in range(start_ms, end_ms + 1, step_ms)]


def run(events: list[tuple[str, Any]], spec: ObservationSpec = SPEC) -> tuple[list[Frame], Counter[str]]:
    sync = FrameSynchronizer(spec)
    frames: list[Frame] = []
    for role, msg in events:
        frames += sync.push(role, msg)
    frames += sync.flush()
    return frames, sync.drops


def ordered(*groups: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """Merge event lists by header stamp (stable), as a bag in receive order would give them."""
    events = [e for g in groups for e in g]
    return sorted(events, key=lambda e: e[1].header.stamp.sec * 10**9 + e[1].header.stamp.nanosec)


BASE_ROUTE = [("route", path(0, ROUTE))]


@pytest.mark.parametrize(
    ("name", "events", "n_frames", "drops"),
    [
        (
            "complete",
            ordered(
                BASE_ROUTE, odometry_every(20, 0, 200), [("imu", imu(95 * MS))], [("camera", image(100 * MS, PIX))]
            ),
            1,
            {},
        ),
        (
            "imu_stale",
            ordered(BASE_ROUTE, odometry_every(20, 0, 400), [("imu", imu(0))], [("camera", image(300 * MS, PIX))]),
            0,
            {"imu_stale": 1},
        ),
        (
            "imu_missing",
            ordered(BASE_ROUTE, odometry_every(20, 0, 200), [("camera", image(100 * MS, PIX))]),
            0,
            {"imu_missing": 1},
        ),
        (
            "route_missing",
            ordered(odometry_every(20, 0, 200), [("imu", imu(95 * MS))], [("camera", image(100 * MS, PIX))]),
            0,
            {"route_missing": 1},
        ),
        (
            "odometry_gap",
            ordered(
                BASE_ROUTE, odometry_every(400, 0, 400), [("imu", imu(195 * MS))], [("camera", image(200 * MS, PIX))]
            ),
            0,
            {"odometry_stale": 1},
        ),
        (
            "odometry_before_first",
            ordered(
                BASE_ROUTE, [("imu", imu(95 * MS))], [("camera", image(100 * MS, PIX))], odometry_every(20, 150, 200)
            ),
            0,
            {"odometry_missing": 1},
        ),
        (
            "odometry_stops",  # the frame waits, then other inputs run past the slop: it can never complete
            ordered(
                BASE_ROUTE,
                odometry_every(20, 0, 80),
                [("camera", image(100 * MS, PIX))],
                [("imu", imu(t * MS)) for t in range(100, 400, 20)],
            ),
            0,
            {"odometry_stale": 1},
        ),
        (
            "end_of_stream",
            ordered(BASE_ROUTE, odometry_every(20, 0, 80), [("camera", image(100 * MS, PIX))]),
            0,
            {"end_of_stream": 1},
        ),
        (
            "camera_30hz_to_10hz",
            ordered(
                BASE_ROUTE,
                odometry_every(20, 0, 1100),
                [("imu", imu(t * MS)) for t in range(0, 1100, 20)],
                [("camera", image(round(k * 1000 / 30) * MS, PIX)) for k in range(1, 31)],
            ),
            10,
            {"camera_rate": 20},
        ),
        (
            "camera_out_of_order",
            BASE_ROUTE
            + odometry_every(20, 0, 60)
            + [("imu", imu(60 * MS)), ("camera", image(300 * MS, PIX)), ("camera", image(200 * MS, PIX))]
            + [("imu", imu(300 * MS))]
            + odometry_every(20, 80, 320),
            1,
            {"camera_out_of_order": 1},
        ),
    ],
)
def test_synchronizer_table(name: str, events: list[tuple[str, Any]], n_frames: int, drops: dict[str, int]) -> None:
    frames, got = run(events)
    assert len(frames) == n_frames, name
    assert dict(got) == drops, name


def test_odometry_is_interpolated_to_the_frame_stamp() -> None:
    events = ordered(
        BASE_ROUTE, odometry_every(20, 0, 200), [("imu", imu(95 * MS))], [("camera", image(110 * MS, PIX))]
    )
    (frame,), _ = run(events)
    assert frame.stamp_ns == 110 * MS
    assert frame.pose.x == pytest.approx(1.1)  # 10 m/s at 110 ms, between the 100 and 120 ms samples
    assert frame.imu is not None and frame.imu.stamp_ns == 95 * MS


def test_state_only_samples_on_a_clock_aligned_to_the_period() -> None:
    spec = ObservationSpec(camera=None, sample_rate_hz=10.0)
    events = ordered(BASE_ROUTE, odometry_every(20, 5, 1005), [("imu", imu(t * MS)) for t in range(0, 1005, 20)])
    frames, drops = run(events, spec)
    assert [f.stamp_ns for f in frames] == [k * 100 * MS for k in range(1, 11)]
    assert dict(drops) == {}


def test_roles_outside_the_spec_are_ignored() -> None:
    sync = FrameSynchronizer(SPEC)
    assert sync.push("diagnostics", odom(0, 0.0)) == []


def test_compute_features_with_imu() -> None:
    events = ordered(BASE_ROUTE, odometry_every(20, 0, 200, v=10.0), [("imu", imu(95 * MS, 0.2, 1.5, -0.5))])
    events += [("camera", image(100 * MS, PIX)), *odometry_every(20, 220, 240)]
    (frame,), _ = run(events)
    f = compute_features(frame, SPEC)
    assert list(f.values) == ["image", "ego_state", "route_target"]  # the tensor table's feature arrays
    np.testing.assert_allclose(f["ego_state"], [10.0, 0.2, 1.5, -0.5], rtol=1e-6)
    np.testing.assert_allclose(f["route_target"], [10.0, 0.0], atol=1e-5)  # 10 m ahead on a straight route
    assert f["image"].shape == (2, 4, 3) and (f["image"] == 77).all() and f["image"].dtype == np.uint8
    assert f["ego_state"].dtype == np.float32 and f["route_target"].dtype == np.float32


def test_compute_features_without_imu_uses_odometry() -> None:
    spec = ObservationSpec(camera=None, imu=None)
    events = [("route", path(0, ROUTE))]
    events += [("odometry", odom(t * MS, x=t / 100, v=5.0 + t / 1000, w=0.1)) for t in range(0, 220, 20)]
    frames, _ = run(events, spec)
    assert frames[0].stamp_ns == 0  # an odometry sample exactly on the clock
    f = compute_features(frames[1], spec)
    assert "image" not in f.values
    v = 5.1
    np.testing.assert_allclose(f["ego_state"], [v, 0.1, 1.0, v * 0.1], rtol=1e-5)


@pytest.mark.parametrize(
    "values",
    [
        [0.3, -0.1],
        [1.0, 2.0, 3.0],
        [5.0, -2.0, 7.5, 0.25],
        [0.1, 0.1, 0.2, 0.1, 0.3],
        [1e300, 1e300, -1e300, 3.0],  # the middle two are summed: as numpy, not overflow-safe
        [float("inf"), 1.0, 2.0],
        [float("-inf"), float("inf")],
        [1.0, float("nan"), 2.0],
    ],
)
def test_median_of_few_is_numpys_median(values: list[float]) -> None:
    """The frame's IMU median without numpy's call overhead, bit for bit what np.median gives."""
    with np.errstate(invalid="ignore"):  # inf - inf in the middle pair: nan, as intended
        expected = float(np.median(np.asarray(values, dtype=np.float64)))
    got = median_of_few(values)
    assert (math.isnan(got) and math.isnan(expected)) or got == expected
