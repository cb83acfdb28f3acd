"""A plain rclpy program, nothing of roadloop in it: what any ROS 2 user's node on the car would be.

    python stock_subscriber.py TOPIC COUNT

Subscribes to TOPIC with ackermann_msgs/msg/AckermannDriveStamped (the generated class, reliable,
keep last 50), prints `ready`, then one JSON line per message received (its fields) and, after
COUNT messages, one JSON line with what the graph says about the publisher: the type name
(demangled from the DDS type name) and the RIHS01 type hash it announced. Exits 3 when nothing
arrives within 120 s.
"""

import json
import sys
import time

import rclpy
from ackermann_msgs.msg import AckermannDriveStamped
from rclpy.qos import QoSProfile, ReliabilityPolicy

topic, count = sys.argv[1], int(sys.argv[2])
rclpy.init()
node = rclpy.create_node("stock_subscriber")
got = []


def on_message(msg: AckermannDriveStamped) -> None:
    got.append(msg)
    d = msg.drive
    fields = [d.steering_angle, d.steering_angle_velocity, d.speed, d.acceleration, d.jerk]
    stamp = [msg.header.stamp.sec, msg.header.stamp.nanosec, msg.header.frame_id]
    print(json.dumps({"stamp": stamp, "drive": fields}), flush=True)


node.create_subscription(
    AckermannDriveStamped, topic, on_message, QoSProfile(depth=50, reliability=ReliabilityPolicy.RELIABLE)
)
print("ready", flush=True)
deadline = time.monotonic() + 120
while len(got) < count and time.monotonic() < deadline:
    rclpy.spin_once(node, timeout_sec=0.5)
pubs = [
    {"type": str(i.topic_type), "hash": str(i.topic_type_hash), "node": i.node_name}
    for i in node.get_publishers_info_by_topic(topic)
]
print(json.dumps({"publishers": pubs}), flush=True)
node.destroy_node()
rclpy.shutdown()
sys.exit(0 if len(got) >= count else 3)
