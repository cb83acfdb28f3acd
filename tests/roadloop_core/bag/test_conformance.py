"""Every bag in ../shared/data/rosbag2-conformance (written by real ROS 2 tools) reads as rosbag2 says it should."""

from __future__ import annotations

import shutil
import stat
from pathlib import Path

import pytest
from rosbags.rosbag2 import Reader as RosbagsReader

from roadloop_core.bag import open_bag
from roadloop_core.bag.reindex import reindex_bag
from roadloop_core.errors import BagError

STORAGES = ("sqlite3", "mcap")

# bag -> (total messages, {topic: count}) exactly as each metadata.yaml states.
EXPECTED = {
    "cdr_test": (7, {"/array_topic": 4, "/test_topic": 3}),
    "talker": (20, {"/topic": 10, "/rosout": 10, "/parameter_events": 0}),
    "topics_and_service_events": (
        10,
        {
            "/events/write_split": 0,
            "/test_service1/_service_event": 4,
            "/test_service2/_service_event": 4,
            "/test_topic1": 1,
            "/test_topic2": 1,
        },
    ),
    "wbag": (6074, {"AAA": 804, "BBB": 742, "CCC": 742, "DDD": 753, "EEE": 804, "FFF": 772, "GGG": 731, "HHH": 726}),
}
SQLITE_ONLY = {
    "convert_a": (150, {"a_empty": 100, "b_basictypes": 50}),
    "empty_bag": (0, {"/rosout": 0, "/parameter_events": 0}),
}
MCAP_ONLY = {"convert_b": (75, {"c_strings": 50, "a_empty": 25})}

CASES = [(s, b, *EXPECTED[b]) for s in STORAGES for b in EXPECTED]
CASES += [("sqlite3", b, *v) for b, v in SQLITE_ONLY.items()] + [("mcap", b, *v) for b, v in MCAP_ONLY.items()]
# Types neither the typestore nor the bag defines: rosbag2's convert_a test bag has no definitions table.
UNDECODABLE = {("sqlite3", "convert_a")}


@pytest.mark.parametrize(("storage", "bag", "total", "per_topic"), CASES, ids=[f"{c[0]}/{c[1]}" for c in CASES])
def test_counts_order_and_decoding(
    conformance_dir: Path, storage: str, bag: str, total: int, per_topic: dict[str, int]
) -> None:
    with open_bag(conformance_dir / storage / bag) as reader:
        info = reader.info
        assert info.storage == storage
        assert info.message_count == total
        assert {t.name: t.message_count for t in info.topics} == per_topic
        assert reader.problems == []
        stamps, seen, decoded = [], dict.fromkeys(per_topic, 0), 0
        for raw in reader.messages():
            stamps.append(raw.timestamp_ns)
            seen[raw.topic] += 1
            if (storage, bag) not in UNDECODABLE:
                reader.decode(raw)
                decoded += 1
        assert seen == per_topic
        assert stamps == sorted(stamps)
        assert decoded == (0 if (storage, bag) in UNDECODABLE else total)


@pytest.mark.parametrize("storage", STORAGES)
def test_talker_holds_twenty_messages_with_their_text(conformance_dir: Path, storage: str) -> None:
    with open_bag(conformance_dir / storage / "talker") as reader:
        texts = [reader.decode(r).data for r in reader.messages(["/topic"])]
        logs = [reader.decode(r).msg for r in reader.messages(["/rosout"])]
    assert texts == [f"Hello, world! {i}" for i in range(10)]
    assert logs == [f"Publishing: 'Hello, world! {i}'" for i in range(10)]


@pytest.mark.parametrize("storage", STORAGES)
def test_cdr_test_decodes_from_embedded_definitions(conformance_dir: Path, storage: str) -> None:
    with open_bag(conformance_dir / storage / "cdr_test") as reader:
        assert "test_msgs/msg/Arrays" in reader.typestore.fielddefs  # registered from the bag, not the store
        msgs = [reader.decode(r) for r in reader.messages(["/array_topic"])]
    assert all(len(m.string_values) == 3 for m in msgs)
    assert list(msgs[0].string_values) == ["Complex Hello1", "Complex Hello2", "Complex Hello3"]
    assert list(msgs[0].int64_values_default) == [0, 2**63 - 1, -(2**63)]


@pytest.mark.parametrize("storage", STORAGES)
def test_service_events_decode(conformance_dir: Path, storage: str) -> None:
    with open_bag(conformance_dir / storage / "topics_and_service_events") as reader:
        events = [reader.decode(r) for r in reader.messages(["/test_service1/_service_event"])]
    assert len(events) == 4
    # the client recorded REQUEST_SENT (0) carrying the request and RESPONSE_RECEIVED (3) carrying the response
    assert [(e.info.event_type, e.info.sequence_number) for e in events] == [(0, 1), (3, 1), (0, 2), (3, 2)]
    assert [(len(e.request), len(e.response)) for e in events] == [(1, 0), (0, 1)] * 2


# rosbags reads these correctly (its QoS-equality join does not trip on them): our stream must equal its.
AGREE = [(s, b) for s in STORAGES for b in ("cdr_test", "topics_and_service_events", "wbag")] + [("mcap", "convert_b")]


@pytest.mark.parametrize(("storage", "bag"), AGREE, ids=[f"{s}/{b}" for s, b in AGREE])
def test_same_messages_as_rosbags(conformance_dir: Path, storage: str, bag: str) -> None:
    path = conformance_dir / storage / bag
    with RosbagsReader(path) as ref:
        theirs = sorted((c.topic, t, bytes(d)) for c, t, d in ref.messages())
    with open_bag(path) as reader:
        ours = sorted((r.topic, r.timestamp_ns, bytes(r.data)) for r in reader.messages())
    assert ours == theirs


def test_wrong_serialization_format_is_one_line_error(conformance_dir: Path) -> None:
    with pytest.raises(BagError) as err:
        open_bag(conformance_dir / "sqlite3" / "wrong_rmw_test")
    text = str(err.value)
    assert "wrong_format" in text and "metadata.yaml" in text and "\n" not in text


@pytest.mark.parametrize("storage", STORAGES)
def test_bag_without_metadata_says_to_reindex_then_reads_after_reindex(
    conformance_dir: Path, tmp_path: Path, storage: str
) -> None:
    src = conformance_dir / storage / "no_metadata_multiple_files"
    with pytest.raises(BagError, match="roadloop bag reindex"):
        open_bag(src)
    bag = tmp_path / "bag"
    shutil.copytree(src, bag)
    for p in [bag, *bag.iterdir()]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    meta, recovered = reindex_bag(bag)
    assert recovered == []
    assert meta.message_count == 3177 and len(meta.relative_file_paths) == 3
    assert meta.relative_file_paths == [
        f"multiple_files_{i}.{'db3' if storage == 'sqlite3' else 'mcap'}" for i in range(3)
    ]
    with open_bag(bag) as reader:
        assert reader.problems == []
        stamps = [r.timestamp_ns for r in reader.messages()]
        assert len(stamps) == 3177 and stamps == sorted(stamps)
        assert reader.info.topics[0].name == "/chatter"
    # rosbags agrees with the metadata we wrote
    with RosbagsReader(bag) as ref:
        assert sum(1 for _ in ref.messages()) == 3177


def test_single_storage_file_opens_without_metadata(conformance_dir: Path) -> None:
    with open_bag(conformance_dir / "mcap" / "talker" / "talker.mcap") as reader:
        assert reader.info.message_count == 20
        assert reader.info.version == 0
