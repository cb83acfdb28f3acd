"""Bags for the target distro: `distro="humble"` writes metadata version 5 that Humble's rosbag2 reads (issue 16.1).

Humble's rules, field by field, as rosbag2 decodes metadata.yaml (yaml-cpp `as<T>()`, which throws
"bad conversion" on a node of the wrong kind). Taken from rosbag2's source:

- ros2/rosbag2 `rosbag2_storage/include/rosbag2_storage/yaml.hpp`, `convert<BagMetadata>::decode`
  and `convert<TopicMetadata>::decode`: the decoder is gated by version. For version 5 it reads
  `version` (int), `storage_identifier` (string), `duration.nanoseconds` and
  `starting_time.nanoseconds_since_epoch` (uint64), `message_count` (uint64),
  `topics_with_message_count` (a sequence; each `topic_metadata` {`name`, `type`,
  `serialization_format`, `offered_qos_profiles` (string, version >= 4)} and `message_count`
  (uint64)), `relative_file_paths` (sequence of strings), `compression_format` and
  `compression_mode` (strings, version >= 3) and `files` (version >= 5: `path`,
  `starting_time.nanoseconds_since_epoch`, `duration.nanoseconds`, `message_count`). The branches
  for `custom_data` (>= 6), `type_description_hash` (>= 7) and `ros_distro` (>= 8) are newer than
  Humble: the stored file is a later revision of the same decoder, whose branches up to version 5
  are what Humble has. The humble-branch file itself was not among the sources that could be read
  here; `rosbag2_storage/CHANGELOG.rst` dates the steps: 0.10.0 "Metadata per file info" (version
  5, before Humble's 0.15), custom data in 0.17.0 (after Humble).
- ros2/rosbag2 `rosbag2_transport/src/rosbag2_transport/qos.cpp` (Galactic/Humble revision,
  `convert<Rosbag2QoS>::decode`): `offered_qos_profiles` is a YAML *string* holding a sequence of
  profiles; each needs `history`, `reliability`, `durability`, `liveliness` (int enums), `depth`
  (int), `deadline`, `lifespan`, `liveliness_lease_duration` ({`sec`, `nsec`} uint64) and
  `avoid_ros_namespace_conventions` (bool). Humble's rmw enums: history/reliability/durability
  0..3, liveliness 0..4.
- foxglove/mcap `docs/specification/profiles/ros2.md`: an mcap channel's `offered_qos_profiles` is a
  required string (Humble's mcap plugin parses it as above).

The checker is first run on rosbag2's own version-5 metadata (the conformance bag `convert_a`) and
on our version-9 output (which Humble rejects: "bad conversion" at offered_qos_profiles), so it is
shown to tell the two apart before it judges the writer.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from mcap.reader import make_reader

from roadloop_core.bag import open_bag
from roadloop_core.bag.reindex import reindex_bag

ROADLOOP = shutil.which("roadloop", path=str(Path(sys.executable).parent)) or "roadloop"
V5_KEYS = {
    "version",
    "storage_identifier",
    "duration",
    "starting_time",
    "message_count",
    "topics_with_message_count",
    "compression_format",
    "compression_mode",
    "relative_file_paths",
    "files",
}
TOPIC_KEYS = {"name", "type", "serialization_format", "offered_qos_profiles"}
QOS_ENUM_MAX = {"history": 3, "reliability": 3, "durability": 3, "liveliness": 4}
QOS_DURATIONS = ("deadline", "lifespan", "liveliness_lease_duration")


class BadConversion(AssertionError):
    """What yaml-cpp would throw: the field's node cannot be converted to the type Humble asks for."""


def _field(node: Any, key: str, where: str) -> Any:
    if not isinstance(node, dict) or key not in node:
        raise BadConversion(f"{where}.{key}: missing (an undefined node)")
    return node[key]


def _uint64(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not 0 <= v < 2**64:
        raise BadConversion(f"{where}: {v!r} is not a uint64")
    return v


def _int(v: Any, where: str) -> int:
    if isinstance(v, bool) or not isinstance(v, int) or not -(2**31) <= v < 2**31:
        raise BadConversion(f"{where}: {v!r} is not an int")
    return v


def _string(v: Any, where: str) -> str:
    if not isinstance(v, str):  # a scalar; a sequence or mapping (or null) is a bad conversion
        raise BadConversion(f"{where}: {type(v).__name__} is not a string scalar")
    return v


def check_humble_qos(text: str, where: str) -> list[dict[str, Any]]:
    profiles = yaml.safe_load(text)
    if not isinstance(profiles, list):
        raise BadConversion(f"{where}: the QoS string does not hold a sequence")
    for i, p in enumerate(profiles):
        at = f"{where}[{i}]"
        if not isinstance(p, dict):
            raise BadConversion(f"{at}: not a mapping")
        for key, top in QOS_ENUM_MAX.items():
            value = _int(_field(p, key, at), f"{at}.{key}")
            assert 0 <= value <= top, f"{at}.{key}={value} is outside Humble's rmw enum"
        _int(_field(p, "depth", at), f"{at}.depth")
        for key in QOS_DURATIONS:
            d = _field(p, key, at)
            _uint64(_field(d, "sec", f"{at}.{key}"), f"{at}.{key}.sec")
            _uint64(_field(d, "nsec", f"{at}.{key}"), f"{at}.{key}.nsec")
        if not isinstance(_field(p, "avoid_ros_namespace_conventions", at), bool):
            raise BadConversion(f"{at}.avoid_ros_namespace_conventions: not a bool")
    return profiles


def check_humble_metadata(info: Any, where: str = "rosbag2_bagfile_information", *, exact_keys: bool = True) -> None:
    """Raise BadConversion/AssertionError where Humble's rosbag2 would not read `info` (the inner mapping)."""
    version = _int(_field(info, "version", where), "version")  # Humble's gates (>= 3, 4, 5) all apply from 5 on
    assert version >= 5, "Humble's decoder below version 5 skips the per-file info"
    _string(_field(info, "storage_identifier", where), "storage_identifier")
    _uint64(_field(_field(info, "duration", where), "nanoseconds", "duration"), "duration.nanoseconds")
    start = _field(info, "starting_time", where)
    _uint64(_field(start, "nanoseconds_since_epoch", "starting_time"), "starting_time.nanoseconds_since_epoch")
    _uint64(_field(info, "message_count", where), "message_count")
    topics = _field(info, "topics_with_message_count", where)
    if not isinstance(topics, list):
        raise BadConversion("topics_with_message_count: not a sequence")
    for i, t in enumerate(topics):
        at = f"topics_with_message_count[{i}]"
        tm = _field(t, "topic_metadata", at)
        for key in ("name", "type", "serialization_format"):
            _string(_field(tm, key, at), f"{at}.{key}")
        qos = _string(_field(tm, "offered_qos_profiles", at), f"{at}.offered_qos_profiles")
        if qos:
            check_humble_qos(qos, f"{at}.offered_qos_profiles")
        _uint64(_field(t, "message_count", at), f"{at}.message_count")
        if exact_keys:
            assert set(tm) == TOPIC_KEYS, f"{at}: keys {sorted(tm)} are not Humble's"
    paths = _field(info, "relative_file_paths", where)
    assert isinstance(paths, list), "relative_file_paths: not a sequence"
    for i, p in enumerate(paths):
        _string(p, f"relative_file_paths[{i}]")
    _string(_field(info, "compression_format", where), "compression_format")
    _string(_field(info, "compression_mode", where), "compression_mode")
    files = _field(info, "files", where)
    assert isinstance(files, list), "files: not a sequence"
    for i, f in enumerate(files):
        at = f"files[{i}]"
        _string(_field(f, "path", at), f"{at}.path")
        _uint64(_field(_field(f, "starting_time", at), "nanoseconds_since_epoch", at), f"{at}.starting_time")
        _uint64(_field(_field(f, "duration", at), "nanoseconds", at), f"{at}.duration")
        _uint64(_field(f, "message_count", at), f"{at}.message_count")
    if exact_keys:
        assert set(info) == V5_KEYS, f"keys {sorted(set(info) ^ V5_KEYS)} are not the version-5 field set"


def _inner(bag: Path) -> Any:
    return yaml.safe_load((bag / "metadata.yaml").read_text())["rosbag2_bagfile_information"]


def test_the_checker_accepts_rosbag2s_own_version_5_and_rejects_version_9(
    conformance_dir: Path, tmp_path: Path, imu_bag: Any
) -> None:
    check_humble_metadata(_inner(conformance_dir / "sqlite3" / "convert_a"))
    imu_bag(tmp_path / "jazzy", n=30)
    with pytest.raises(BadConversion, match="offered_qos_profiles: list is not a string"):
        check_humble_metadata(_inner(tmp_path / "jazzy"), exact_keys=False)


def test_humble_bags_follow_humbles_metadata_rules(tmp_path: Path, imu_bag: Any) -> None:
    bag = tmp_path / "humble"
    imu_bag(bag, n=400, distro="humble", custom={"roadloop.seed": "4"}, max_bytes=20_000)
    info = _inner(bag)
    check_humble_metadata(info)
    assert info["version"] == 5 and len(info["files"]) > 1 and info["message_count"] == 400
    profile = yaml.safe_load(info["topics_with_message_count"][0]["topic_metadata"]["offered_qos_profiles"])[0]
    assert profile == {  # the registry's sensor QoS, as Humble's numbers: keep_last(10), best_effort, volatile
        "history": 1,
        "depth": 10,
        "reliability": 2,
        "durability": 2,
        "deadline": {"sec": 9223372036, "nsec": 854775807},
        "lifespan": {"sec": 9223372036, "nsec": 854775807},
        "liveliness": 1,
        "liveliness_lease_duration": {"sec": 9223372036, "nsec": 854775807},
        "avoid_ros_namespace_conventions": False,
    }
    for f in sorted(bag.glob("*.mcap")):  # each file: channel QoS strings Humble parses, no type hashes
        with open(f, "rb") as stream:
            reader = make_reader(stream)
            summary = reader.get_summary()
            assert summary is not None
            for channel in summary.channels.values():
                assert "topic_type_hash" not in channel.metadata
                check_humble_qos(channel.metadata["offered_qos_profiles"], f"{f.name}:{channel.topic}")
            embedded = next(m for m in reader.iter_metadata() if m.name == "rosbag2")
            check_humble_metadata(yaml.safe_load(embedded.metadata["serialized_metadata"]), f"{f.name}:rosbag2")


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_our_reader_and_rosbags_round_trip_both_versions(tmp_path: Path, imu_bag: Any, distro: str) -> None:
    from rosbags.rosbag2 import Reader

    bag = tmp_path / distro
    written = imu_bag(bag, n=200, distro=distro, custom={"roadloop.scenario": "x"})
    expected = sorted(written, key=lambda m: m[1])
    with open_bag(bag) as reader:
        info = reader.info
        assert (info.version, info.ros_distro) == ((5, "humble") if distro == "humble" else (9, "jazzy"))
        assert info.custom_data == {"roadloop.scenario": "x"}  # v5 has no custom_data: read from the files
        assert [(m.topic, m.timestamp_ns, bytes(m.data)) for m in reader.messages()] == expected
        assert not reader.problems
    with Reader(bag) as other:  # an implementation we did not write
        got = [(c.topic, t, bytes(d)) for c, t, d in other.messages()]
    assert sorted(got, key=lambda m: m[1]) == expected


def test_reindex_converts_between_distros_and_keeps_the_bags_own_by_default(tmp_path: Path, imu_bag: Any) -> None:
    bag = tmp_path / "b"
    imu_bag(bag, n=100)
    jazzy = (bag / "metadata.yaml").read_bytes()
    reindex_bag(bag, distro="humble")
    check_humble_metadata(_inner(bag))
    humble = (bag / "metadata.yaml").read_bytes()
    reindex_bag(bag)  # no distro: the bag's own (version 5) is kept, byte for byte
    assert (bag / "metadata.yaml").read_bytes() == humble
    reindex_bag(bag, distro="jazzy")
    assert (bag / "metadata.yaml").read_bytes() == jazzy


def test_bag_info_shows_version_and_distro(tmp_path: Path, imu_bag: Any) -> None:
    bag = tmp_path / "b"
    imu_bag(bag, n=20, distro="humble")
    env = {**os.environ, "COLUMNS": "200"}
    res = subprocess.run([ROADLOOP, "bag", "info", str(bag)], capture_output=True, text=True, timeout=120, env=env)
    assert res.returncode == 0, res.stderr
    assert "(metadata version 5)" in res.stdout and "ROS distro:   humble" in res.stdout
    res = subprocess.run(
        [ROADLOOP, "bag", "reindex", str(bag), "--distro", "rolling"], capture_output=True, text=True, timeout=120
    )
    assert res.returncode == 2 and "unknown ROS distro 'rolling'" in res.stderr
