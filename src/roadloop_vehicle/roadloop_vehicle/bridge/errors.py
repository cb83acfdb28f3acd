"""Errors of the vehicle bridge (all RoadloopError: one line and exit 2 at the CLI).

Talking to the hub fails with the hub client's own errors (`roadloop_core.errors.HubUnavailable`:
retry after a backoff, `HubRefused`: give up on that request).
"""

from __future__ import annotations

from roadloop_vehicle.errors import VehicleError

__all__ = ["BridgeError"]


class BridgeError(VehicleError):
    """Base of the bridge's errors."""
