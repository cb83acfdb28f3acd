"""ROS 2 node entry points: thin wiring of the pure cores through `roadloop_vehicle.ros`.

`NODE_PARAMS` maps each node to the config dataclass whose fields it declares as
parameters; the launch/config consistency test reads it.
"""

from roadloop_vehicle.params import DriveParams, SafetyParams

__all__ = ["NODE_PARAMS"]

NODE_PARAMS: dict[str, type] = {"drive_node": DriveParams, "safety_node": SafetyParams}
