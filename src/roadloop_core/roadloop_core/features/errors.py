"""Errors of the shared feature code."""

from __future__ import annotations

from roadloop_core.errors import RoadloopError

__all__ = ["FeatureError"]


class FeatureError(RoadloopError):
    """A message cannot be turned into features (unsupported encoding, malformed content)."""
