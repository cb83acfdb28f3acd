"""Errors of training and export (one line at the CLI, exit 2)."""

from __future__ import annotations

from roadloop_cluster.errors import ClusterError

__all__ = ["DatasetMismatchError", "ExportError", "NonFiniteLossError", "TrainError"]


class TrainError(ClusterError):
    """Training could not start or did not finish."""


class DatasetMismatchError(TrainError):
    """The dataset's features do not match what the model config expects."""


class NonFiniteLossError(TrainError):
    """The loss became NaN/inf; the message names the step and the shard(s)."""


class ExportError(ClusterError):
    """A run could not be exported to a bundle (missing weights, parity check failed, ...)."""
