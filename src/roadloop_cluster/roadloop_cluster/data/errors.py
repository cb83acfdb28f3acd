"""Errors of the dataset builder and loader (RoadloopError: one line, exit 2 at the CLI)."""

from __future__ import annotations

from roadloop_cluster.errors import ClusterError

__all__ = ["DataError", "NoUsableInputError"]


class DataError(ClusterError):
    """A dataset, its index or a shard is missing, malformed or inconsistent."""


class NoUsableInputError(DataError):
    """Every input bag was skipped: nothing to build a dataset from."""
