"""metadata.yaml: every version the conformance bags use parses; our output round-trips; parsing has bounded cost."""

from __future__ import annotations

import dataclasses
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from roadloop_core.bag import open_bag
from roadloop_core.bag.metadata import (
    MAX_METADATA_BYTES,
    dump_metadata,
    load_untrusted_yaml,
    parse_metadata,
    read_metadata,
)
from roadloop_core.cli.bag import qos_summary
from roadloop_core.errors import BagError

ROADLOOP = shutil.which("roadloop", path=str(Path(sys.executable).parent)) or "roadloop"

VERSIONS = {"sqlite3/talker": 4, "mcap/convert_b": 5, "mcap/cdr_test": 7, "mcap/topics_and_service_events": 8}


@pytest.mark.parametrize(("bag", "version"), VERSIONS.items())
def test_versions_parse_and_round_trip_through_version_9(conformance_dir: Path, bag: str, version: int) -> None:
    meta = read_metadata(conformance_dir / bag)
    assert meta.version == version
    again = parse_metadata(dump_metadata(dataclasses.replace(meta, version=9)), "dumped")
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


def _bomb(levels: int = 30) -> str:
    """The probe's input: a few KiB of metadata.yaml whose custom_data aliases double at every level."""
    lines = ["a0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    for i in range(1, levels):
        lines.append(f"a{i}: &a{i} [*a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}, *a{i - 1}]")
    anchors = "\n".join("    " + line for line in lines)
    return f"""rosbag2_bagfile_information:
  version: 9
  storage_identifier: mcap
  relative_file_paths: []
  duration: {{nanoseconds: 0}}
  starting_time: {{nanoseconds_since_epoch: 0}}
  message_count: 0
  topics_with_message_count: []
  custom_data:
{anchors}
    boom: *a{levels - 1}
"""


def test_an_alias_bomb_is_refused_from_the_event_stream() -> None:
    text = _bomb()
    assert len(text) < 8000
    with pytest.raises(BagError, match="alias bomb") as err:
        parse_metadata(text, "bag/metadata.yaml")
    assert str(err.value).startswith("bag/metadata.yaml:") and "\n" not in str(err.value)


def test_an_alias_bomb_does_not_hang_bag_info(tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    bag.mkdir()
    (bag / "metadata.yaml").write_text(_bomb())
    env = {**os.environ}
    env.pop("ROADLOOP_DEBUG", None)
    # before: ran until killed at 648 MB; the timeout is only a safety net for a regression
    res = subprocess.run([ROADLOOP, "bag", "info", str(bag)], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 2 and "alias bomb" in res.stderr and len(res.stderr.strip().splitlines()) == 1


def test_a_qos_string_bomb_is_bounded_too() -> None:
    lines = ["- &q0 {history: 1, depth: 1}"] + [
        f"- &q{i} [*q{i - 1}, *q{i - 1}, *q{i - 1}, *q{i - 1}]" for i in range(1, 40)
    ]
    assert qos_summary("\n".join(lines)) == []


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("a: &x [*x]", "refers to itself"),
        ("[" * 200 + "]" * 200, "nested more than"),
        ("x: " + "y" * (MAX_METADATA_BYTES + 1), "more than the"),
        ("a: [1, 2", "invalid YAML"),
    ],
)
def test_untrusted_yaml_limits(text: str, match: str) -> None:
    with pytest.raises(BagError, match=match):
        load_untrusted_yaml(text, "m")


def test_harmless_anchors_still_parse() -> None:
    assert load_untrusted_yaml("d: &d {sec: 1, nsec: 2}\ne: *d\n", "m") == {
        "d": {"sec": 1, "nsec": 2},
        "e": {"sec": 1, "nsec": 2},
    }


@pytest.mark.parametrize(
    ("field", "value", "match"),
    [
        ("relative_file_paths", "[a.mcap, a.mcap]", "lists a.mcap twice"),
        ("custom_data", "{k: [1, 2]}", "custom_data.k must be a string"),
        ("message_count", "lots", "field message_count"),
    ],
)
def test_malformed_fields_name_the_field(field: str, value: str, match: str) -> None:
    base = {
        "version": "9",
        "storage_identifier": "mcap",
        "relative_file_paths": "[]",
        "duration": "{nanoseconds: 0}",
        "starting_time": "{nanoseconds_since_epoch: 0}",
        "message_count": "0",
        "topics_with_message_count": "[]",
    }
    base[field] = value
    text = "rosbag2_bagfile_information:\n" + "".join(f"  {k}: {v}\n" for k, v in base.items())
    with pytest.raises(BagError, match=match):
        parse_metadata(text, "m")


def test_metadata_that_is_not_a_regular_file(tmp_path: Path) -> None:
    (tmp_path / "metadata.yaml").mkdir()
    with pytest.raises(BagError, match="a folder, not a regular file"):
        read_metadata(tmp_path)
    (tmp_path / "metadata.yaml").rmdir()
    (tmp_path / "metadata.yaml").write_bytes(b"\xff\xfe binary")
    with pytest.raises(BagError, match="not UTF-8"):
        read_metadata(tmp_path)
