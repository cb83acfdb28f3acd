"""The dataset index: typed round trip with stable bytes, and one clear line for every kind of bad file."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import pytest

from roadloop_core.contract.dataset_index import (
    ArrayStats,
    DatasetIndex,
    DatasetIndexError,
    Shard,
    Skipped,
    Source,
    Split,
    TimeBlock,
    read_dataset_index,
    write_dataset_index,
)
from roadloop_core.contract.observation import ObservationSpec

INDEX = DatasetIndex(
    dataset_id="abc123",
    count=30,
    arrays=("image", "ego_state", "route_target", "waypoints", "command", "stamp_ns", "source"),
    observation=ObservationSpec(image_width=48, image_height=32, label_horizon=6),
    topics={"camera": ("/cam", "sensor_msgs/msg/Image"), "odometry": ("/odom", "nav_msgs/msg/Odometry")},
    splits={
        "train": Split(
            20, (Shard("shards/train-00000.npz", 16, "a" * 64), Shard("shards/train-00001.npz", 4, "b" * 64))
        ),
        "val": Split(10, (Shard("shards/val-00000.npz", 10, "c" * 64),)),
    },
    stats={
        "ego_state": ArrayStats(20, [8.0, 0.0, 0.1, 0.2], [1.5, 0.1, 0.3, 0.4]),
        "waypoints": ArrayStats(20, [9.0, 0.5], [5.0, 1.0], [[4.0, 0.1]] * 6, [[1.0, 0.2]] * 6),
    },
    stats_split="train",
    sources=(Source("/bags/a", "d" * 64, "train", 20), Source("/bags/b", "e" * 64, "val", 10)),
    drops={"camera_rate": 3, "no_future": 60},
    skipped=(Skipped("/bags/c", "truncated or inconsistent: ..."),),
    config={"observation": {"camera": "camera"}, "build": {"shard_size": 16}},
)


def test_round_trip_is_lossless_and_the_bytes_stable(tmp_path: Path) -> None:
    path = write_dataset_index(tmp_path, INDEX)
    assert path == tmp_path / "index.json"
    assert read_dataset_index(tmp_path) == INDEX
    first = path.read_bytes()
    write_dataset_index(tmp_path, read_dataset_index(tmp_path))
    assert path.read_bytes() == first
    doc = json.loads(first)
    assert list(doc) == ["format", "dataset_id", "count", "arrays", "observation", "label", "topics", "splits",
                         "stats", "stats_split", "sources", "drops", "skipped", "config", "split_by", "split_gap_s",
                         "time_blocks", "array_sources"]  # fmt: skip
    assert doc["label"] == {"horizon": 6, "dt": 0.5} and doc["topics"]["camera"] == ["/cam", "sensor_msgs/msg/Image"]
    assert list(doc["stats"]["waypoints"]) == ["count", "mean", "std", "per_step_mean", "per_step_std"]
    assert list(doc["stats"]["ego_state"]) == ["count", "mean", "std"]
    assert first.endswith(b"}\n") and b'\n "format"' in first  # indent 1, final newline


# one bag split inside by time, without a route, with labels from a status topic
TIME_SPLIT = dataclasses.replace(
    INDEX,
    observation=ObservationSpec(camera=None, route=None, route_source="none", ego_history_steps=5, label_horizon=6),
    sources=(Source("/bags/a", "d" * 64, "time", 30),),
    split_by="time",
    split_gap_s=4.2,
    time_blocks=(TimeBlock(0, "train", 100, 200, 20), TimeBlock(0, "val", 200, 300, 10)),
    array_sources={"command": "drive of /vehicle/status (role vehicle_status) nearest the frame"},
)


def test_time_splits_and_label_sources_round_trip(tmp_path: Path) -> None:
    write_dataset_index(tmp_path, TIME_SPLIT)
    assert read_dataset_index(tmp_path) == TIME_SPLIT
    doc = json.loads((tmp_path / "index.json").read_text())
    assert doc["time_blocks"][1] == {"source": 0, "split": "val", "start_ns": 200, "end_ns": 300, "samples": 10}
    assert doc["observation"]["route_source"] == "none" and doc["split_gap_s"] == 4.2


def test_an_index_from_before_the_time_splits_reads_as_split_by_bag(tmp_path: Path) -> None:
    doc = INDEX.to_json()
    for key in ("split_by", "split_gap_s", "time_blocks", "array_sources"):
        del doc[key]
    for key in ("route_source", "imu_frame", "imu_accel_unit", "imu_aggregate", "odometry_yaw_offset_deg",
                "ego_history_steps", "ego_history_dt_s"):  # fmt: skip
        del doc["observation"][key]
    (tmp_path / "index.json").write_text(json.dumps(doc))
    assert read_dataset_index(tmp_path) == INDEX  # the defaults of the newer fields are the earlier behaviour


def _broken(edit: str) -> Any:
    doc = INDEX.to_json()
    if edit == "format":
        doc["format"] = "roadloop-dataset/0"
    elif edit == "no-splits":
        del doc["splits"]
    elif edit == "count-type":
        doc["splits"]["train"]["shards"][1]["count"] = "4"
    elif edit == "no-sha":
        del doc["sources"][1]["sha256"]
    elif edit == "label":
        doc["label"]["horizon"] = 8
    elif edit == "observation":
        del doc["observation"]["label_dt_s"]
    elif edit == "topics":
        doc["topics"]["camera"] = ["/cam"]
    elif edit == "not-object":
        doc = [doc]
    elif edit == "block":
        doc = TIME_SPLIT.to_json()
        del doc["time_blocks"][1]["end_ns"]
    elif edit == "split-by":
        doc["split_by"] = 3
    return doc


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        ("format", "format is 'roadloop-dataset/0', expected 'roadloop-dataset/1'"),
        ("no-splits", "field 'splits' missing"),
        ("count-type", r"field 'splits.train.shards\[1\].count' must be an integer, got '4'"),
        ("no-sha", r"field 'sources\[1\].sha256' missing"),
        ("label", "label {horizon: 8, dt: 0.5} disagrees with observation.label_horizon 6"),
        ("observation", r"observation: missing field\(s\) label_dt_s"),
        ("topics", r"field 'topics.camera' must be \[topic name, message type\]"),
        ("not-object", "expected a JSON object"),
        ("block", r"field 'time_blocks\[1\].end_ns' missing"),
        ("split-by", "field 'split_by' must be a string, got '3'"),
    ],
)
def test_a_bad_index_is_one_line_naming_file_and_field(tmp_path: Path, edit: str, message: str) -> None:
    (tmp_path / "index.json").write_text(json.dumps(_broken(edit)))
    with pytest.raises(DatasetIndexError, match=message) as err:
        read_dataset_index(tmp_path)
    assert str(err.value).startswith(str(tmp_path / "index.json")) and "\n" not in str(err.value)


def test_missing_and_unreadable_indexes(tmp_path: Path) -> None:
    with pytest.raises(DatasetIndexError, match="no dataset here"):
        read_dataset_index(tmp_path)
    (tmp_path / "index.json").write_text("{not json")
    with pytest.raises(DatasetIndexError, match="unreadable dataset index"):
        read_dataset_index(tmp_path)


def test_split_lookup_names_the_splits() -> None:
    assert INDEX.split("val").count == 10
    with pytest.raises(DatasetIndexError, match="no split 'test' \\(the dataset has train, val\\)"):
        INDEX.split("test")
