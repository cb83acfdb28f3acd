"""`roadloop bag play`: a bag's recorded bytes onto the ROS 2 graph at the recorded timing.

`plan` (pure: topics, QoS, timing), `player` (rclpy, imported lazily), `cli` (the verb,
contributed to `roadloop bag` through the `roadloop.bag_verbs` entry-point group).
Nothing is imported here, so loading the verb costs no rclpy import.
"""
