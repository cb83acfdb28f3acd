"""RosLink: the simulator's side of the ROS 2 graph (the only module here that imports rclpy).

One rclpy node per episode (a fresh node, so a latched route of the last episode never reaches the
next episode's nodes): raw publishers for the sensor topics the simulator produces (types and QoS
from the topic registry), /clock, and a raw subscription to the registry's `command` topic whose
messages go, decoded, into a `CommandBox`.
"""

from __future__ import annotations

import contextlib
import threading
import time
from typing import Any

from roadloop_core.bag import RawMessage
from roadloop_core.registry import TopicRegistry
from roadloop_core.stamps import header_stamp_ns
from roadloop_core.typesys import typestore_for
from roadloop_sim.errors import DriverError
from roadloop_sim.over_ros.lockstep import CommandBox

__all__ = ["CLOCK_TOPIC", "OUTPUT_ROLES", "RosLink"]

CLOCK_TOPIC = "/clock"  # ROS's fixed name: every node with use_sim_time reads it
OUTPUT_ROLES = ("command", "command_raw", "trajectory")  # the onboard nodes publish these; the simulator never


def _rclpy() -> Any:
    try:
        import rclpy
    except ImportError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DriverError(f"--over-ros needs ROS 2 (rclpy), which cannot be imported here: {first}") from err
    return rclpy


class RosLink:
    def __init__(self, registry: TopicRegistry, box: CommandBox, name: str = "roadloop_sim") -> None:
        rclpy = _rclpy()
        from rclpy.context import Context
        from rclpy.executors import SingleThreadedExecutor
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rclpy.signals import SignalHandlerOptions

        from roadloop_vehicle.errors import InterfaceError
        from roadloop_vehicle.ros.adapter import qos_profile
        from roadloop_vehicle.ros.interfaces import message_class

        self.registry = registry
        self.box = box
        store = typestore_for(registry.typestore)
        cmd = registry["command"]
        roles = [r for r in registry.topics if r not in OUTPUT_ROLES]
        try:  # every class first: a missing interface package fails before the graph is touched
            classes = {r: message_class(registry[r].type, registry[r].name) for r in [*roles, "command"]}
            clock_cls = message_class("rosgraph_msgs/msg/Clock", CLOCK_TOPIC)
        except InterfaceError as err:
            raise DriverError(str(err)) from err
        self.context = Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        try:
            self.node = rclpy.create_node(
                name, context=self.context, enable_rosout=False, start_parameter_services=False
            )
            self.publishers = {
                registry[r].name: self.node.create_publisher(classes[r], registry[r].name, qos_profile(registry[r].qos))
                for r in roles
            }
            # what rclpy's and rclcpp's time sources subscribe with (ClockQoS): best-effort, keep last 1
            self._clock_pub = self.node.create_publisher(
                clock_cls, CLOCK_TOPIC, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
            )
            self._clock_cls = clock_cls

            def on_command(data: bytes) -> None:
                msg = store.deserialize_cdr(data, cmd.type)
                box.put(header_stamp_ns(msg), msg)

            self.node.create_subscription(classes["command"], cmd.name, on_command, qos_profile(cmd.qos), raw=True)
            self._executor = SingleThreadedExecutor(context=self.context)
            self._executor.add_node(self.node)
        except BaseException:
            self.context.try_shutdown()
            raise
        self._thread = threading.Thread(target=self._spin, name="roadloop-sim-ros", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        with contextlib.suppress(ExternalShutdownException):  # closed under it: done
            self._executor.spin()

    def publish(self, messages: list[RawMessage]) -> None:
        for m in messages:
            pub = self.publishers.get(m.topic)
            if pub is None:
                raise DriverError(f"{m.topic}: the simulator produced a topic the registry does not list")
            pub.publish(bytes(m.data))

    def clock(self, t_ns: int) -> None:
        msg = self._clock_cls()
        msg.clock.sec, msg.clock.nanosec = divmod(t_ns, 1_000_000_000)
        self._clock_pub.publish(msg)

    def wait_matched(self, subscribers: dict[str, int], deadline_s: float, alive: Any = None) -> list[str]:
        """Wait until each topic has at least its number of matched subscriptions and `command` a publisher;
        the topics still short when the deadline passed (or `alive()` turned False)."""
        cmd_topic = self.registry["command"].name
        end = time.monotonic() + deadline_s

        def short() -> list[str]:
            out = [t for t, n in subscribers.items() if self.publishers[t].get_subscription_count() < n]
            return out + ([cmd_topic] if self.node.count_publishers(cmd_topic) == 0 else [])

        while (missing := short()) and time.monotonic() < end and (alive is None or alive()):
            time.sleep(0.05)
        return missing

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=10.0)
        self.node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(timeout=10.0)
