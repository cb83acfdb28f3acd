"""The bridge's decisions as pure functions: no clock, no disk, no network (table-tested).

- `bag_tags` / `priority_for`: a trigger (disengagement) goes first;
- `upload_order`: priority, then oldest recording first;
- `is_closed`: a bag may be uploaded only once it is complete and quiet;
- `backoff_delay`: exponential backoff with full jitter;
- `TokenBucket`: the optional bandwidth cap;
- `plan_deletions` / `disk_status`: free disk only from confirmed bags, oldest first, only over quota.
"""

from __future__ import annotations

import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

__all__ = [
    "DiskStatus",
    "LocalBag",
    "TokenBucket",
    "backoff_delay",
    "bag_tags",
    "disk_status",
    "is_closed",
    "plan_deletions",
    "priority_for",
    "upload_order",
]

OK, WARN, ERROR = 0, 1, 2


def bag_tags(custom_data: Mapping[str, str], tag_lines: Iterable[str]) -> list[str]:
    """Tags from the bag's custom data (`roadloop.intervention`, `roadloop.tags`) and a `<bag>.tags` file."""
    tags = {t.strip() for t in tag_lines if t.strip() and not t.strip().startswith("#")}
    if str(custom_data.get("roadloop.intervention", "")).strip().lower() == "true":
        tags.add("disengagement")
    tags.update(t.strip() for t in str(custom_data.get("roadloop.tags", "")).split(",") if t.strip())
    return sorted(tags)


def priority_for(tags: Iterable[str], priority_tags: Mapping[str, int]) -> int:
    return max((priority_tags.get(t, 0) for t in tags), default=0)


@dataclass(frozen=True)
class LocalBag:
    name: str
    size: int
    start_ns: int
    priority: int = 0
    confirmed: bool = False


def upload_order(bags: Sequence[LocalBag]) -> list[LocalBag]:
    """Highest priority first, then the oldest recording, then by name (total order: reproducible)."""
    return sorted(bags, key=lambda b: (-b.priority, b.start_ns, b.name))


def is_closed(has_metadata: bool, in_progress: bool, newest_mtime_s: float, now_s: float, settle_s: float) -> bool:
    """Closed: metadata.yaml written, no in-progress marker, and no file touched for `settle_s`."""
    return has_metadata and not in_progress and now_s - newest_mtime_s >= settle_s


def backoff_delay(attempt: int, base_s: float, max_s: float, rng: random.Random) -> float:
    """Full jitter: uniform in [0, min(max, base * 2**attempt)] so retrying fleets do not synchronise."""
    return rng.uniform(0.0, min(max_s, base_s * (2.0 ** min(attempt, 30))))


class TokenBucket:
    """Bandwidth cap: `take(n, now)` says how long to wait before sending n bytes (rate 0 = unlimited)."""

    def __init__(self, rate: float, burst: float | None = None) -> None:
        self.rate = rate
        self.burst = burst if burst is not None else max(rate / 4.0, 64 << 10)
        self.tokens = self.burst
        self.stamp: float | None = None

    def take(self, n: int, now: float) -> float:
        if self.rate <= 0:
            return 0.0
        if self.stamp is not None:
            self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        self.tokens -= n
        return 0.0 if self.tokens >= 0 else -self.tokens / self.rate


def plan_deletions(bags: Sequence[LocalBag], usage: int, quota: int) -> list[LocalBag]:
    """Confirmed bags to delete, oldest first, until usage <= quota; never an unconfirmed one."""
    out: list[LocalBag] = []
    for bag in sorted((b for b in bags if b.confirmed), key=lambda b: (b.start_ns, b.name)):
        if usage <= quota:
            break
        out.append(bag)
        usage -= bag.size
    return out


@dataclass(frozen=True)
class DiskStatus:
    level: int  # diagnostic_msgs/DiagnosticStatus level: 0 OK, 1 WARN, 2 ERROR
    message: str
    usage: int
    quota: int
    unconfirmed: int  # bytes held by bags the hub has not confirmed


def disk_status(usage: int, quota: int, unconfirmed: int, warn_fraction: float) -> DiskStatus:
    if usage > quota:
        msg = f"over quota by {usage - quota} B: {unconfirmed} B not yet confirmed by the hub, nothing deleted"
        return DiskStatus(ERROR, msg, usage, quota, unconfirmed)
    if usage > warn_fraction * quota:
        return DiskStatus(WARN, f"disk at {usage / max(quota, 1):.0%} of quota", usage, quota, unconfirmed)
    return DiskStatus(OK, f"disk at {usage / max(quota, 1):.0%} of quota", usage, quota, unconfirmed)
