"""Time-block splits inside a bag (table-driven, leakage checked on the stamps) and the label sources of
`build.labels` through the SampleBuilder, on small decoded message streams."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pytest

from roadloop_cluster.data.config import BuildConfig, LabelConfig, load_dataset_config
from roadloop_cluster.data.errors import DataError
from roadloop_cluster.data.samples import SampleBuilder, hindsight_target
from roadloop_cluster.data.splits import plan_time_blocks
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.errors import ConfigError
from roadloop_core.features import Pose2D
from tests.roadloop_core.features.msgs import T, header, odom, path

S = 1_000_000_000
MS = 1_000_000


def stamps(seconds: float, hz: float = 10.0) -> np.ndarray:
    return (np.arange(int(seconds * hz)) * round(S / hz)).astype(np.int64)


@pytest.mark.parametrize(
    ("seconds", "block_s", "val_fraction", "shrink", "blocks", "val_blocks"),
    [
        (300.0, 60.0, 0.2, False, 5, 1),
        (300.0, 30.0, 0.2, False, 10, 2),
        (120.0, 60.0, 0.2, False, 2, 1),  # two blocks: one of each
        (600.0, 60.0, 0.5, False, 10, 5),
        (300.0, 60.0, 0.2, True, 5, 1),  # long enough: shrink changes nothing
        (60.0, 60.0, 0.2, True, 4, 1),  # one 60 s drive: 4 blocks of 15 s (5 would be < 2 x the 6.2 s gap)
        (40.0, 60.0, 0.2, True, 3, 1),
        (60.0, 60.0, 0.5, True, 2, 1),
    ],
)
def test_time_blocks_keep_history_plus_horizon_between_splits(
    seconds: float, block_s: float, val_fraction: float, shrink: bool, blocks: int, val_blocks: int
) -> None:
    t = stamps(seconds)
    before, after = 2_200 * MS, 4 * S  # ego history 2.2 s, labels 4 s ahead
    plan = plan_time_blocks(t, "ab" * 32, "salt", val_fraction, block_s, before, after, "bag", shrink=shrink)
    assert len(plan.block_splits) == blocks and plan.block_splits.count("val") == val_blocks
    again = plan_time_blocks(t, "ab" * 32, "salt", val_fraction, block_s, before, after, "bag", shrink=shrink)
    assert plan == again  # stable
    rows = {s: np.concatenate([np.arange(lo, hi) for lo, hi in plan.runs[s]]) for s in ("train", "val")}
    assert not set(rows["train"]) & set(rows["val"])
    # no leakage: between any train and any val sample at least history + horizon
    gap = np.abs(t[rows["train"]][:, None] - t[rows["val"]][None, :]).min()
    assert gap >= before + after
    assert sum(plan.block_samples) == len(rows["train"]) + len(rows["val"])
    # a sample is dropped only near a boundary between splits: at most (history + horizon) * rate per boundary
    boundaries = sum(1 for a, b in zip(plan.block_splits, plan.block_splits[1:], strict=False) if a != b)
    assert len(t) - sum(plan.block_samples) <= boundaries * ((before + after) / S * 10 + 1)


@pytest.mark.parametrize(
    ("seconds", "block_s", "val_fraction", "message"),
    [
        (
            40.0,
            60.0,
            0.2,
            r"cannot split one bag into train and val by time \(its samples span 39.9 s.*lower "
            r"build.split_block_s to at most 19.9 s",
        ),
        (300.0, 60.0, 0.0, r"val_fraction is 0"),
        (30.0, 5.0, 0.2, r"time blocks of 5.0 s leave split 'val' empty.*raise build.split_block_s above 12.4 s"),
    ],
)
@pytest.mark.parametrize("shrink", [False, True])
def test_an_impossible_time_split_says_what_to_do(
    seconds: float, block_s: float, val_fraction: float, message: str, shrink: bool
) -> None:
    if shrink and seconds == 40.0:
        message = r"its samples span 19.9 s"  # shrink splits 40 s (previous test); 20 s is < 2 x the 6.2 s gap
        seconds = 20.0
    with pytest.raises(DataError, match=message):
        plan_time_blocks(
            stamps(seconds), "cd" * 32, "salt", val_fraction, block_s, 2_200 * MS, 4 * S, "bags/x", shrink=shrink
        )


def test_old_label_keys_are_refused_with_their_new_place(tmp_path: Any) -> None:
    p = tmp_path / "d.yaml"
    p.write_text("build:\n  command: command\n")
    with pytest.raises(ConfigError, match=r"build\.command is now build\.labels\.command"):
        load_dataset_config(p)
    with pytest.raises(ValueError, match="split_by must be one of auto, bag, time"):
        BuildConfig(split_by="blocks")


def status(ns: int, steering: float, speed: float) -> Any:
    return T["ackermann_msgs/msg/AckermannDriveStamped"](
        header=header(ns, "base_link"),
        drive=T["ackermann_msgs/msg/AckermannDrive"](
            steering_angle=steering, steering_angle_velocity=0.0, speed=speed, acceleration=0.0, jerk=0.0
        ),
    )


SPEC = ObservationSpec(camera=None, imu=None, route=None, route_source="none", label_horizon=4, label_dt_s=0.5)


def drive(builder: SampleBuilder, seconds: float = 4.0, v: float = 10.0, extra: Any = None) -> list[Any]:
    samples = []
    for t in range(0, int(seconds * 1000) + 1, 20):
        samples += builder.step("odometry", odom(t * MS, x=v * t / 1000, v=v))
        if t % 20 == 0:
            samples += builder.step("vehicle_status", status(t * MS, 1.5, v))
        if extra is not None:
            samples += extra(builder, t)
    return samples + builder.finish()


def test_the_command_label_comes_from_its_role_divided_by_the_steering_ratio() -> None:
    labels = LabelConfig(command="vehicle_status", waypoints="odometry", steering_ratio=15.0)
    samples = drive(SampleBuilder(SPEC, labels))
    assert samples and all(s.labels["command"].tolist() == pytest.approx([0.1, 10.0]) for s in samples)
    np.testing.assert_allclose(samples[0].labels["waypoints"], [[5.0, 0], [10.0, 0], [15.0, 0], [20.0, 0]], atol=1e-4)


def test_waypoint_labels_from_a_path_role_are_its_poses() -> None:
    """An expert's plan on a nav_msgs/Path role (ego frame, as /planning/trajectory): the label is its poses."""
    labels = LabelConfig(command="vehicle_status", waypoints="expert_plan")
    plan = [(1.0, 0.1), (2.0, 0.2), (3.0, 0.3), (4.0, 0.4), (5.0, 0.5)]

    def expert(builder: SampleBuilder, t: int) -> list[Any]:
        return builder.step("expert_plan", path(t * MS, plan)) if t % 100 == 0 else []

    samples = drive(SampleBuilder(SPEC, labels, waypoints_from_path=True), extra=expert)
    assert samples
    for s in samples:
        np.testing.assert_allclose(s.labels["waypoints"], plan[:4], rtol=1e-6)
    short = SampleBuilder(SPEC, labels, waypoints_from_path=True)
    drive(short, extra=lambda b, t: b.step("expert_plan", path(t * MS, plan[:2])) if t % 100 == 0 else [])
    assert short.drops["label_waypoints_short"] > 0


def test_plan_labels_need_no_future_so_a_drive_keeps_its_last_frames() -> None:
    """A DAgger drive that ends in a crash: its last seconds (the lead-up) are labelled by the expert's plan,
    while odometry labels (the logged future) cannot label the last horizon of a bag."""
    plan = [(1.0, 0.0), (2.0, 0.0), (3.0, 0.0), (4.0, 0.0)]

    def expert(builder: SampleBuilder, t: int) -> list[Any]:
        return builder.step("expert_plan", path(t * MS, plan)) if t % 100 == 0 else []

    planned = SampleBuilder(
        SPEC, LabelConfig(command="vehicle_status", waypoints="expert_plan"), waypoints_from_path=True
    )
    logged = SampleBuilder(SPEC, LabelConfig(command="vehicle_status", waypoints="odometry"))
    with_plan, with_future = drive(planned, extra=expert), drive(logged)
    horizon_ns = SPEC.label_horizon * round(SPEC.label_dt_s * 1e9)
    last = 4000 * MS
    assert max(s.features.stamp_ns for s in with_plan) >= last - SPEC.period_ns
    assert planned.drops["no_future"] == 0
    assert max(s.features.stamp_ns for s in with_future) <= last - horizon_ns
    assert logged.drops["no_future"] > 0
    assert len(with_plan) == len(with_future) + logged.drops["no_future"]


def test_a_hindsight_route_target_is_the_logged_path_ahead() -> None:
    spec = ObservationSpec(camera=None, imu=None, route=None, route_source="hindsight", label_horizon=4)
    labels = LabelConfig(command="vehicle_status", waypoints="odometry")
    # a left-hand circle of radius 50 m at 10 m/s: 10 m along the arc is a chord at 0.1 rad
    r, v = 50.0, 10.0
    b = SampleBuilder(spec, labels)
    samples = []
    for t in range(0, 4001, 20):
        a = v * t / 1000 / r
        samples += b.step("odometry", odom(t * MS, x=r * math.sin(a), y=r * (1 - math.cos(a)), yaw=a, v=v, w=v / r))
        samples += b.step("vehicle_status", status(t * MS, 0.05, v))
    expected = [r * math.sin(0.2), r * (1 - math.cos(0.2))]  # 10 m on a 50 m circle: 0.2 rad
    assert samples
    for s in samples:
        np.testing.assert_allclose(s.features["route_target"], expected, atol=0.02)


@pytest.mark.parametrize(
    ("path_xy", "lookahead", "expected"),
    [
        ([(5.0, 0.0), (10.0, 0.0), (20.0, 0.0)], 10.0, (10.0, 0.0)),
        ([(5.0, 0.0)], 10.0, (10.0, 0.0)),  # past the end: the last segment extended
        ([], 3.0, (0.0, 3.0)),  # standing still, heading north: along the heading
    ],
)
def test_hindsight_target(path_xy: list[tuple[float, float]], lookahead: float, expected: tuple[float, float]) -> None:
    pose = Pose2D(0, 0.0, 0.0, math.pi / 2 if not path_xy else 0.0, 0.0, 0.0, 0.0)
    np.testing.assert_allclose(hindsight_target(pose, np.array(path_xy), lookahead), expected, atol=1e-9)
