"""Errors raised by roadloop_vehicle (all RoadloopError: one line and exit 2 at the CLI)."""

from __future__ import annotations

from roadloop_core.errors import RoadloopError

__all__ = [
    "BackendUnavailableError",
    "InterfaceError",
    "ModelError",
    "ObservationError",
    "PlayError",
    "ProvisionError",
    "ReplayError",
    "VehicleError",
]


class VehicleError(RoadloopError):
    """Base of roadloop_vehicle's errors."""


class ModelError(VehicleError):
    """A bundle was refused (signature, hashes, spec) or its model failed to load or run."""


class BackendUnavailableError(VehicleError):
    """An inference backend (TensorRT, CUDA) is not installed on this machine."""


class ObservationError(VehicleError):
    """Input messages cannot form an observation (missing topic, undecodable message)."""


class ReplayError(VehicleError):
    """A bag cannot be replayed (missing camera topic, unreadable bag, bad output path)."""


class InterfaceError(VehicleError):
    """A topic's message type has no installed ROS 2 interface package (its Python message class)."""


class PlayError(VehicleError):
    """A bag cannot be played onto the ROS 2 graph (no ROS here, unplayable topic, bad options)."""


class ProvisionError(VehicleError):
    """A car cannot be provisioned (unreadable key or template, hub refused the token, first model refused)."""
