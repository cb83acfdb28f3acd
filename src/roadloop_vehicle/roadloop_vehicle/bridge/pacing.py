"""The bandwidth cap wired to a clock: a `pace(n)` for the hub client that sleeps as `TokenBucket` says."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from roadloop_vehicle.bridge.decisions import TokenBucket

__all__ = ["bandwidth_pacer"]


def bandwidth_pacer(
    rate_bytes_per_s: float,
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> Callable[[int], None] | None:
    """None without a cap; else a pace(n) shared by every chunk in flight (one bucket, one lock)."""
    if rate_bytes_per_s <= 0:
        return None
    bucket = TokenBucket(rate_bytes_per_s)
    lock = threading.Lock()

    def pace(n: int) -> None:
        with lock:
            wait = bucket.take(n, clock())
        if wait > 0:
            sleep(wait)

    return pace
