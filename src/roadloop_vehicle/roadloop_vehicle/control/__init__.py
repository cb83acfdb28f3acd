"""Controller: policy waypoints -> steering (pure pursuit) and speed/acceleration (PID)."""

from roadloop_vehicle.control.controller import Command, Controller, ControllerConfig, ControllerInput

__all__ = ["Command", "Controller", "ControllerConfig", "ControllerInput"]
