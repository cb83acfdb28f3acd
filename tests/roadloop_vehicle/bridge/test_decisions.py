"""Table-driven tests of the bridge's pure decisions."""

from __future__ import annotations

import random

import pytest

from roadloop_vehicle.bridge.decisions import (
    LocalBag,
    TokenBucket,
    backoff_delay,
    bag_tags,
    disk_status,
    is_closed,
    plan_deletions,
    priority_for,
    upload_order,
)

PRIO = {"disengagement": 100, "intervention": 100, "hard_brake": 50}


@pytest.mark.parametrize(
    ("custom", "lines", "tags"),
    [
        ({}, [], []),
        ({"roadloop.intervention": "true"}, [], ["disengagement"]),
        ({"roadloop.intervention": "TRUE "}, [], ["disengagement"]),
        ({"roadloop.intervention": "false"}, [], []),
        ({}, ["hard_brake", "", "# a comment", " night "], ["hard_brake", "night"]),
        ({"roadloop.tags": "a, b,,"}, ["a"], ["a", "b"]),
    ],
)
def test_bag_tags(custom: dict[str, str], lines: list[str], tags: list[str]) -> None:
    assert bag_tags(custom, lines) == tags


@pytest.mark.parametrize(
    ("tags", "prio"), [([], 0), (["night"], 0), (["hard_brake"], 50), (["hard_brake", "disengagement"], 100)]
)
def test_priority_for(tags: list[str], prio: int) -> None:
    assert priority_for(tags, PRIO) == prio


def test_upload_order_trigger_first_then_oldest() -> None:
    bags = [
        LocalBag("new_plain", 1, start_ns=300),
        LocalBag("old_plain", 1, start_ns=100),
        LocalBag("new_trigger", 1, start_ns=400, priority=100),
        LocalBag("old_trigger", 1, start_ns=200, priority=100),
        LocalBag("mid_brake", 1, start_ns=250, priority=50),
    ]
    assert [b.name for b in upload_order(bags)] == ["old_trigger", "new_trigger", "mid_brake", "old_plain", "new_plain"]


@pytest.mark.parametrize(
    ("meta", "active", "mtime", "now", "settle", "closed"),
    [
        (True, False, 100.0, 110.0, 5.0, True),
        (True, False, 100.0, 104.0, 5.0, False),  # touched too recently
        (False, False, 0.0, 1e9, 5.0, False),  # no metadata.yaml yet
        (True, True, 0.0, 1e9, 5.0, False),  # a .active file is still being written
        (True, False, 100.0, 100.0, 0.0, True),
    ],
)
def test_is_closed(meta: bool, active: bool, mtime: float, now: float, settle: float, closed: bool) -> None:
    assert is_closed(meta, active, mtime, now, settle) is closed


@pytest.mark.parametrize("attempt", [0, 1, 3, 10, 100])
def test_backoff_bounded_and_jittered(attempt: int) -> None:
    rng = random.Random(attempt)
    delays = [backoff_delay(attempt, 0.5, 30.0, rng) for _ in range(200)]
    cap = min(30.0, 0.5 * 2**attempt)
    assert all(0.0 <= d <= cap for d in delays)
    assert len({round(d, 6) for d in delays}) > 150  # jitter: a fleet does not retry in lockstep


def test_token_bucket_holds_the_rate() -> None:
    bucket = TokenBucket(rate=1000.0, burst=100.0)
    now, sent = 0.0, 0
    for _ in range(50):
        now += bucket.take(100, now)
        sent += 100
    assert sent / now == pytest.approx(1000.0, rel=0.05)
    assert TokenBucket(0.0).take(10**9, 0.0) == 0.0


@pytest.mark.parametrize(
    ("usage", "quota", "expected"),
    [
        (100, 200, []),  # under quota: nothing deleted
        (250, 200, ["a"]),  # oldest confirmed first, stop once under quota
        (400, 200, ["a", "c"]),  # b is unconfirmed: never deleted
        (1000, 200, ["a", "c"]),  # still over quota after all confirmed ones: stop, report pressure
    ],
)
def test_plan_deletions(usage: int, quota: int, expected: list[str]) -> None:
    bags = [
        LocalBag("c", 100, start_ns=3, confirmed=True),
        LocalBag("b", 100, start_ns=2, confirmed=False),
        LocalBag("a", 100, start_ns=1, confirmed=True),
    ]
    assert [b.name for b in plan_deletions(bags, usage, quota)] == expected


@pytest.mark.parametrize(("usage", "level"), [(10, 0), (95, 1), (101, 2)])
def test_disk_status_levels(usage: int, level: int) -> None:
    status = disk_status(usage, 100, unconfirmed=usage, warn_fraction=0.9)
    assert status.level == level
    if level == 2:
        assert "nothing deleted" in status.message
