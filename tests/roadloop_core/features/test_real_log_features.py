"""What real logs need of the shared features: IMU conventions and aggregation, heading offset, ego history,
and observations without a route. Table-driven over small message streams."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from roadloop_core.contract.observation import STANDARD_GRAVITY, ObservationSpec
from roadloop_core.features import FrameSynchronizer, compute_features

from .msgs import imu, odom, path

MS = 1_000_000
# state-only, no route, 10 Hz on the odometry clock
NO_ROUTE = ObservationSpec(camera=None, route=None, route_source="none", sync_slop_s=0.1)


def stream(spec: ObservationSpec, seconds: float = 1.0, imu_at: Any = None, v: float = 10.0) -> list[Any]:
    """Frames of a car driving along x at `v` (odometry at 50 Hz), an IMU at 100 Hz from `imu_at(t_ms)`."""
    events: list[tuple[int, str, Any]] = []
    for t in range(0, int(seconds * 1000) + 1, 20):
        events.append((t, "odometry", odom(t * MS, x=v * t / 1000, v=v)))
    for t in range(0, int(seconds * 1000) + 1, 10):
        events.append((t, "imu", imu_at(t) if imu_at else imu(t * MS)))
    events.sort(key=lambda e: (e[0], e[1] != "imu"))
    sync = FrameSynchronizer(spec)
    frames = []
    for _, role, msg in events:
        frames += sync.push(role, msg)
    return frames


@pytest.mark.parametrize(
    ("aggregate", "expected_ax"),
    [
        ("latest", 6.2),  # the raw sample at the stamp: the spike itself
        ("mean", 0.62),  # one of ten samples in (t - 0.1 s, t]
        ("median", 0.0),  # not moved at all
    ],
)
def test_a_single_imu_spike_and_the_aggregation(aggregate: str, expected_ax: float) -> None:
    spec = ObservationSpec(camera=None, route=None, route_source="none", imu_aggregate=aggregate)
    frames = stream(spec, imu_at=lambda t: imu(t * MS, ax=6.2 if t == 500 else 0.0))
    frame = next(f for f in frames if f.stamp_ns == 500 * MS)
    assert compute_features(frame, spec)["ego_state"][2] == pytest.approx(expected_ax, abs=1e-6)


def test_mean_and_median_over_the_frame_interval() -> None:
    """Samples in (t - period, t]: t = 500 ms averages 410..500 ms (ten samples, a ramp of yaw rate)."""
    for aggregate in ("mean", "median"):
        spec = ObservationSpec(camera=None, route=None, route_source="none", imu_aggregate=aggregate)
        frames = stream(spec, imu_at=lambda t: imu(t * MS, w=t / 1000.0))
        frame = next(f for f in frames if f.stamp_ns == 500 * MS)
        assert frame.imu is not None and frame.imu.yaw_rate == pytest.approx(0.455)  # mean = median of 0.41..0.50


@pytest.mark.parametrize(
    ("frame", "unit", "logged", "expected"),
    [
        ("flu", "mps2", (0.2, 1.0, 0.5), (0.2, 1.0, 0.5)),
        ("frd", "mps2", (0.2, 1.0, 0.5), (-0.2, 1.0, -0.5)),  # z down, y right: yaw rate and ay flip
        ("flu", "g", (0.2, 0.1, 0.05), (0.2, 0.1 * STANDARD_GRAVITY, 0.05 * STANDARD_GRAVITY)),
        ("frd", "g", (0.2, 0.1, 0.05), (-0.2, 0.1 * STANDARD_GRAVITY, -0.05 * STANDARD_GRAVITY)),
    ],
)
def test_imu_conventions_become_rep103_si(
    frame: str, unit: str, logged: tuple[float, float, float], expected: tuple[float, float, float]
) -> None:
    spec = ObservationSpec(camera=None, route=None, route_source="none", imu_frame=frame, imu_accel_unit=unit)
    frames = stream(spec, imu_at=lambda t: imu(t * MS, w=logged[0], ax=logged[1], ay=logged[2]))
    ego = compute_features(frames[-1], spec)["ego_state"]
    np.testing.assert_allclose(ego[1:], expected, rtol=1e-6)


def test_the_odometry_heading_offset_turns_the_pose() -> None:
    spec = ObservationSpec(camera=None, route=None, route_source="none", odometry_yaw_offset_deg=-2.0)
    frames = stream(spec)
    assert frames[-1].pose.yaw == pytest.approx(math.radians(-2.0))


def test_ego_history_reads_odometry_back_in_time() -> None:
    """A car accelerating at 1 m/s² from 5 m/s while turning at 0.1 rad/s: each past step is exact."""
    spec = ObservationSpec(
        camera=None, imu=None, route=None, route_source="none", ego_history_steps=3, ego_history_dt_s=0.2
    )
    events = [
        ("odometry", odom(t * MS, x=0.0, yaw=0.1 * t / 1000, v=5.0 + t / 1000, w=0.1)) for t in range(0, 2001, 20)
    ]
    sync = FrameSynchronizer(spec)
    frames = [f for role, msg in events for f in sync.push(role, msg)]
    # the first frame with odometry back to t - (3 + 1) * 0.2 s is at 0.8 s
    assert frames[0].stamp_ns == 800 * MS and sync.drops["ego_history_missing"] == 8
    h = compute_features(frames[-1], spec)["ego_history"]  # t = 2.0 s
    assert h.shape == (3, 4) and h.dtype == np.float32
    np.testing.assert_allclose(h[:, 0], [6.8, 6.6, 6.4], rtol=1e-6)  # speed at 1.8, 1.6, 1.4 s
    np.testing.assert_allclose(h[:, 1], 0.1, rtol=1e-6)  # yaw rate
    np.testing.assert_allclose(h[:, 2], 1.0, rtol=1e-5)  # acceleration over the step before
    np.testing.assert_allclose(h[:, 3], [0.02, 0.04, 0.06], rtol=1e-5)  # heading change up to now


def test_without_a_route_no_route_is_waited_for() -> None:
    """The same stream without any route message: a `none` spec samples it, a `topic` spec drops every frame."""
    frames = stream(NO_ROUTE)
    assert len(frames) == 11 and all(f.route is None for f in frames)
    assert list(compute_features(frames[-1], NO_ROUTE).values) == ["ego_state"]
    with_route = ObservationSpec(camera=None)
    sync = FrameSynchronizer(with_route)
    for t in range(0, 1001, 20):
        assert sync.push("imu", imu(t * MS)) == [] and sync.push("odometry", odom(t * MS, x=t / 100, v=10.0)) == []
    assert dict(sync.drops) == {"route_missing": 11}


def test_a_hindsight_spec_reads_the_route_on_the_car_only() -> None:
    spec = ObservationSpec(camera=None, imu=None, route="route", route_source="hindsight")
    builder, onboard = FrameSynchronizer(spec), FrameSynchronizer(spec, onboard=True)
    assert builder.route_role is None and onboard.route_role == "route"
    route = path(0, [(0.0, 0.0), (100.0, 0.0)])
    assert builder.push("route", route) == [] and onboard.push("route", route) == []
    (b,), (o,) = builder.push("odometry", odom(0, 0.0, v=1.0)), onboard.push("odometry", odom(0, 0.0, v=1.0))
    assert b.route is None and o.route is not None
    # the builder fills the route target itself (from the logged future); the car computes it from the route
    assert "route_target" not in compute_features(b, spec, without=("route_target",)).values
    np.testing.assert_allclose(compute_features(o, spec)["route_target"], [10.0, 0.0], atol=1e-6)
