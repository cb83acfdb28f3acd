"""Errors of the fleet loop (RoadloopError subclasses: one line and exit 2 at the CLI)."""

from __future__ import annotations

from roadloop_cluster.errors import ClusterError

__all__ = ["LoopError", "StageFailed"]


class LoopError(ClusterError):
    """The loop cannot start or continue (bad config, a busy output folder, a part missing)."""


class StageFailed(LoopError):
    """One stage of the loop failed; the message names the stage and where its outputs are kept."""

    def __init__(self, stage: str, message: str) -> None:
        super().__init__(message)
        self.stage = stage
