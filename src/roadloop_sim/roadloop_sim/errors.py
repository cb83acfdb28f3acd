"""Errors raised by roadloop_sim (all RoadloopError: one line and exit 2 at the CLI)."""

from __future__ import annotations

from roadloop_core.errors import RoadloopError

__all__ = ["SimError"]


class SimError(RoadloopError):
    """Base of roadloop_sim's errors."""
