"""metadata.yaml: every version the conformance bags use parses; our version-9 output round-trips."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from roadloop_core.bag import open_bag
from roadloop_core.bag.metadata import dump_metadata, parse_metadata, read_metadata

VERSIONS = {"sqlite3/talker": 4, "mcap/convert_b": 5, "mcap/cdr_test": 7, "mcap/topics_and_service_events": 8}


@pytest.mark.parametrize(("bag", "version"), VERSIONS.items())
def test_versions_parse_and_round_trip_through_version_9(conformance_dir: Path, bag: str, version: int) -> None:
    meta = read_metadata(conformance_dir / bag)
    assert meta.version == version
    again = parse_metadata(dump_metadata(meta), "dumped")
    assert again.version == 9
    for field in ("storage_identifier", "relative_file_paths", "start_ns", "duration_ns", "message_count", "files"):
        assert getattr(again, field) == getattr(meta, field)
    assert [(t.name, t.type, t.message_count) for t in again.topics] == [
        (t.name, t.type, t.message_count) for t in meta.topics
    ]
    # QoS is re-expressed in version-9 form (enum names), never lost
    for old, new in zip(meta.topics, again.topics, strict=True):
        assert len(yaml.safe_load(new.offered_qos_profiles or "[]")) == len(
            yaml.safe_load(old.offered_qos_profiles or "[]")
        )


def test_custom_data_and_distro_version_6_plus(tmp_path: Path) -> None:
    text = """
rosbag2_bagfile_information:
  version: 6
  storage_identifier: mcap
  relative_file_paths: []
  duration: {nanoseconds: 0}
  starting_time: {nanoseconds_since_epoch: 0}
  message_count: 0
  topics_with_message_count: []
  compression_format: ''
  compression_mode: ''
  custom_data: {roadloop.scenario: highway, roadloop.seed: 4}
"""
    meta = parse_metadata(text, "m")
    assert meta.custom_data == {"roadloop.scenario": "highway", "roadloop.seed": "4"}


@pytest.mark.parametrize("distro", ["jazzy", "humble"])
def test_typestore_is_selectable(conformance_dir: Path, distro: str) -> None:
    with open_bag(conformance_dir / "sqlite3" / "talker", distro) as reader:
        assert [reader.decode(r).data for r in reader.messages(["/topic"])][:1] == ["Hello, world! 0"]
