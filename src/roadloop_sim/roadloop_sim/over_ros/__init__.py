"""The simulator as a ROS 2 node: `roadloop sim eval --driver bundle:PATH --over-ros`.

The embedded simulator publishes the registry's sensor topics and /clock and drives the ego from
/control/command, so the real drive_node and safety_node processes drive closed loop over DDS, in
lockstep on /clock (see `lockstep` and `driver`). `bag_lockstep` feeds a recorded bag to the same
nodes in lockstep, as `roadloop replay` steps its pipeline. `link` is the only module that imports rclpy.
"""

from roadloop_sim.over_ros.config import OverRosConfig, load_over_ros_config
from roadloop_sim.over_ros.lockstep import CommandBox, FramePredictor

__all__ = ["CommandBox", "FramePredictor", "OverRosConfig", "load_over_ros_config"]
