"""Whether a process is still running, for tests that check no child outlives its parent."""

from __future__ import annotations

import psutil

__all__ = ["alive"]


def alive(p: psutil.Process | int) -> bool:
    """Running and not a zombie (a zombie has exited and only waits to be reaped)."""
    try:
        proc = p if isinstance(p, psutil.Process) else psutil.Process(p)
        return proc.is_running() and proc.status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False
