"""Errors raised by roadloop_vehicle (all RoadloopError: one line and exit 2 at the CLI)."""

from __future__ import annotations

from roadloop_core.errors import RoadloopError

__all__ = ["VehicleError"]


class VehicleError(RoadloopError):
    """Base of roadloop_vehicle's errors."""
