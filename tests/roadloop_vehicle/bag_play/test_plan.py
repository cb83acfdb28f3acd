"""The pure part of `roadloop bag play`: which topics, with which QoS, when (tables)."""

from __future__ import annotations

from pathlib import Path

import pytest

from roadloop_core.bag import BagInfo, TopicInfo
from roadloop_core.config import config_dir
from roadloop_core.registry import QosProfile, QosSpec, load_registry
from roadloop_vehicle.bag_play.plan import (
    DEFAULT_QOS,
    BagClock,
    PlayOptions,
    offered_qos,
    plan_topics,
    split_topic_args,
)
from roadloop_vehicle.errors import PlayError

V9_RELIABLE_LATCHED = "- history: unknown\n  depth: 0\n  reliability: reliable\n  durability: transient_local\n"
V4_BEST_EFFORT = "- history: 3\n  depth: 5\n  reliability: 2\n  durability: 2\n"
V4_RELIABLE = "- history: 3\n  depth: 0\n  reliability: 1\n  durability: 2\n"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", None),
        ("not: [yaml", None),
        (V9_RELIABLE_LATCHED, QosSpec(QosProfile.LATCHED, DEFAULT_QOS.depth)),  # depth 0 (unknown) -> default
        (V4_RELIABLE, QosSpec(QosProfile.COMMAND, DEFAULT_QOS.depth)),
        (V4_BEST_EFFORT, QosSpec(QosProfile.SENSOR, 5)),
        (V4_RELIABLE + V4_BEST_EFFORT, QosSpec(QosProfile.SENSOR, 5)),  # mixed publishers: what matches both
        (V9_RELIABLE_LATCHED + V4_RELIABLE, QosSpec(QosProfile.COMMAND, DEFAULT_QOS.depth)),
    ],
)
def test_offered_qos(text: str, expected: QosSpec | None) -> None:
    assert offered_qos(text) == expected


def _info(*topics: TopicInfo) -> BagInfo:
    return BagInfo(Path("BAG"), "mcap", (), "", "", 0, 10**9, sum(t.message_count for t in topics), topics)


CAMERA = TopicInfo("/sensors/camera/front/image", "sensor_msgs/msg/Image", 3, "cdr", V4_RELIABLE)
ROUTE = TopicInfo("/planning/route", "nav_msgs/msg/Path", 1, "cdr", "")
OTHER = TopicInfo("/topic", "std_msgs/msg/String", 2, "cdr", V9_RELIABLE_LATCHED)
BARE = TopicInfo("/bare", "std_msgs/msg/String", 2, "cdr", "")
SERVICE = TopicInfo("/svc/_service_event", "example_interfaces/srv/AddTwoInts_Event", 2, "cdr", "")


def test_plan_takes_registry_qos_then_the_bags_then_the_default() -> None:
    reg = load_registry(config_dir() / "topics.yaml")
    plan = plan_topics(_info(CAMERA, ROUTE, OTHER, BARE, SERVICE), reg)
    assert [(t.name, t.qos, t.qos_source) for t in plan] == [
        (CAMERA.name, reg["camera"].qos, "registry"),  # the registry wins over what the recording offered
        (ROUTE.name, reg["route"].qos, "registry"),
        (OTHER.name, QosSpec(QosProfile.LATCHED, DEFAULT_QOS.depth), "bag"),
        (BARE.name, DEFAULT_QOS, "default"),
    ]  # service events are not played unless asked for


def test_plan_keeps_only_the_topics_asked_for() -> None:
    plan = plan_topics(
        _info(CAMERA, OTHER, SERVICE), load_registry(config_dir() / "topics.yaml"), ("/topic", SERVICE.name)
    )
    assert [t.name for t in plan] == ["/topic", SERVICE.name]


@pytest.mark.parametrize(
    ("topics", "wanted", "needle"),
    [
        ((CAMERA,), ("/nope",), "BAG: --topics /nope: no such topic in the bag; it holds /sensors/camera/front/image"),
        ((TopicInfo("/j", "std_msgs/msg/String", 1, "json"),), (), "BAG: /j: serialization format 'json' is not cdr"),
    ],
)
def test_unplayable_is_one_line_naming_the_topic(
    topics: tuple[TopicInfo, ...], wanted: tuple[str], needle: str
) -> None:
    with pytest.raises(PlayError, match="^" + needle.replace("(", r"\(").replace(")", r"\)") + "$"):
        plan_topics(_info(*topics), load_registry(config_dir() / "topics.yaml"), wanted)


@pytest.mark.parametrize(
    ("kwargs", "needle"),
    [
        ({"rate": 0.0}, "--rate 0.0: must be a number > 0"),
        ({"rate": float("nan")}, "--rate nan"),
        ({"clock_hz": -1.0}, "--clock -1.0: must be a frequency > 0 Hz"),
        ({"clock_hz": float("inf")}, "--clock inf"),
        ({"start_offset_s": -2.0}, "--start-offset -2.0"),
        ({"delay_s": -1.0}, "--delay -1.0"),
    ],
)
def test_bad_options(kwargs: dict[str, float], needle: str) -> None:
    with pytest.raises(PlayError, match=needle.replace("+", r"\+")):
        PlayOptions(**kwargs)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        (None, ()),
        (["/a"], ("/a",)),
        (["/a,/b", "/c"], ("/a", "/b", "/c")),
        (["/a /b", "/a"], ("/a", "/b")),
    ],
)
def test_split_topic_args(args: list[str] | None, expected: tuple[str, ...]) -> None:
    assert split_topic_args(args) == expected


@pytest.mark.parametrize(
    ("rate", "bag_ns", "due_ns"),
    [
        (1.0, 5_000, 1_000_000),  # the pass starts at play_start
        (1.0, 5_000 + 2_000_000_000, 2_001_000_000),
        (2.0, 5_000 + 2_000_000_000, 1_001_000_000),  # twice as fast: half the wall time
        (0.5, 5_000 + 1_000_000_000, 2_001_000_000),
    ],
)
def test_bag_clock_maps_bag_time_to_wall_time_and_back(rate: float, bag_ns: int, due_ns: int) -> None:
    clock = BagClock(play_start_ns=5_000, wall_start_ns=1_000_000, rate=rate)
    assert clock.due_ns(bag_ns) == due_ns
    assert clock.bag_ns(due_ns) == bag_ns
