"""Errors raised by roadloop_sim (all RoadloopError: one line and exit 2 at the CLI)."""

from __future__ import annotations

from roadloop_core.errors import RoadloopError

__all__ = ["CarlaUnavailableError", "DriverError", "ScenarioError", "SimError"]


class SimError(RoadloopError):
    """Base of roadloop_sim's errors."""


class ScenarioError(SimError):
    """An unknown scenario name or an invalid scenario/simulation config."""


class DriverError(SimError):
    """A driver spec cannot be resolved or a driver cannot be built."""


class CarlaUnavailableError(SimError):
    """The carla client is not installed or the server cannot be reached."""
