"""Errors of the vehicle bridge (all RoadloopError: one line and exit 2 at the CLI)."""

from __future__ import annotations

from roadloop_vehicle.errors import VehicleError

__all__ = ["BridgeError", "HubRefused", "HubUnavailable"]


class BridgeError(VehicleError):
    """Base of the bridge's errors."""


class HubUnavailable(BridgeError):
    """The hub could not be reached or answered 5xx/429: worth retrying after a backoff."""


class HubRefused(BridgeError):
    """The hub answered 4xx: retrying the same request will not help."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
