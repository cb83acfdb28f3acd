"""Errors raised by roadloop_cluster (all RoadloopError: one line and exit 2 at the CLI)."""

from __future__ import annotations

from roadloop_core.errors import RoadloopError

__all__ = ["ClusterError"]


class ClusterError(RoadloopError):
    """Base of roadloop_cluster's errors."""
