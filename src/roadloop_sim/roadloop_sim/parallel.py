"""Episodes in parallel worker processes, results in plan order.

An episode's outcome depends only on its scenario, seed and driver (the simulator is reseeded per
episode and the drivers reset), so running the plan over N processes gives the same report and
byte-identical bags as one process; only the wall time changes. Most of an episode's time is
the simulator's camera rendering in Python, so processes, not threads.

Workers are forked (no pickling of the work function or its closures, and the parent's imported
modules and loaded models are inherited): each worker builds its own simulator and driver
on first use (`PerProcess`), since neither may be shared across processes.
"""

from __future__ import annotations

import multiprocessing
import os
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool
from typing import Generic, TypeVar, cast

from roadloop_core.lifetime import die_with_parent
from roadloop_sim.errors import SimError

__all__ = ["PerProcess", "default_jobs", "map_episodes", "worker_count"]

T = TypeVar("T")
R = TypeVar("R")

_work: Callable[[object], object] | None = None  # set before the fork; a forked worker inherits it


def default_jobs() -> int:
    """One worker per core this process may run on."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def worker_count(jobs: int, items: int, serial_only: str | None = None) -> int:
    """Processes to use for `items` episodes: `jobs` (0 = one per core), never more than the episodes.

    `serial_only`: what serves one episode at a time (a given CARLA server, one ROS 2 graph): more than
    one worker is then an error naming it.
    """
    if jobs < 0:
        raise SimError(f"--jobs must be 0 (one per core) or more, got {jobs}")
    wanted = default_jobs() if jobs == 0 else jobs
    workers = max(1, min(wanted, items))
    if workers > 1 and serial_only is not None:
        raise SimError(f"--jobs {jobs} runs episodes in parallel processes, which {serial_only} cannot serve")
    return workers


def _call(item: object) -> object:
    assert _work is not None, "map_episodes sets the work before forking"
    return _work(item)


def map_episodes(work: Callable[[T], R], items: Sequence[T], jobs: int) -> Iterator[R]:
    """`work(item)` for every item, yielded in the order of `items` as each finishes.

    With one worker (or one item) everything runs in this process. An exception in a worker is
    raised here, in the parent, when its result is reached; a worker that dies is an error too.
    Workers end by a message: after the last result, or, on an error, once their running episode is
    over (the rest are cancelled); each dies with this process too (a stage timeout SIGKILLs it).
    """
    workers = worker_count(jobs, len(items))
    if workers == 1:
        yield from (work(item) for item in items)
        return
    global _work
    _work = cast("Callable[[object], object]", work)  # _call hands each item, a T, back to this work
    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"), initializer=die_with_parent)
    try:
        yield from cast("Iterator[R]", pool.map(_call, items))
    except BrokenProcessPool as err:
        raise SimError(f"an episode's worker process died ({err})") from err
    finally:
        pool.shutdown(wait=True, cancel_futures=True)
        _work = None


class PerProcess(Generic[T]):
    """One `make()` per process: a worker's simulator or driver, built on first use after the fork."""

    def __init__(self, make: Callable[[], T]) -> None:
        self._make = make
        self._pid: int | None = None
        self._value: T | None = None

    def get(self) -> T:
        if self._pid != os.getpid() or self._value is None:
            self._value, self._pid = self._make(), os.getpid()
        return self._value

    def here(self) -> T | None:
        """The value built in this process, if any (the parent's, to close)."""
        return self._value if self._pid == os.getpid() else None
