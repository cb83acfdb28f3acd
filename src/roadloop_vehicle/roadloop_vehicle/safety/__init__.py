"""SafetySupervisor: an explicit state machine gating every command sent to the vehicle."""

from roadloop_vehicle.safety.core import SafetyCore
from roadloop_vehicle.safety.supervisor import (
    Fault,
    SafetyConfig,
    SafetyInput,
    SafetyOutput,
    SafetySupervisor,
    State,
    observed_roles,
    transition,
)

__all__ = [
    "Fault",
    "SafetyConfig",
    "SafetyCore",
    "SafetyInput",
    "SafetyOutput",
    "SafetySupervisor",
    "State",
    "observed_roles",
    "transition",
]
