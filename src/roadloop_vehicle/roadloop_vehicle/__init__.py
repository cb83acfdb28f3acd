"""roadloop_vehicle: the onboard pipeline, ROS 2 nodes, deterministic replay, fleet bridge client (no torch)."""

from roadloop_vehicle.errors import VehicleError

__all__ = ["VehicleError"]
