"""RosLink: the simulator's side of the ROS 2 graph (the only module here that imports rclpy).

One rclpy node per episode (a fresh node, so a latched route of the last episode never reaches the
next episode's nodes): raw publishers for the sensor topics the simulator produces (types and QoS
from the topic registry; the nodes' inputs from the start, so they can be matched before the first
message, any other topic the simulator produces when it first does), /clock, and a raw subscription
to the registry's `command` topic whose messages go, decoded, into a `CommandBox`.
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

__all__ = ["CLOCK_TOPIC", "RosLink"]

CLOCK_TOPIC = "/clock"  # ROS's fixed name: every node with use_sim_time reads it


def _rclpy() -> Any:
    try:
        import rclpy
    except ImportError as err:
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DriverError(f"--over-ros needs ROS 2 (rclpy), which cannot be imported here: {first}") from err
    return rclpy


class RosLink:
    def __init__(self, registry: TopicRegistry, box: CommandBox, inputs: list[str], name: str = "roadloop_sim") -> None:
        """`inputs`: the roles the nodes read (their publishers exist from the start)."""
        rclpy = _rclpy()
        from rclpy.context import Context
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rclpy.signals import SignalHandlerOptions

        from roadloop_vehicle.errors import InterfaceError
        from roadloop_vehicle.ros.adapter import qos_profile
        from roadloop_vehicle.ros.executor import LeanExecutor
        from roadloop_vehicle.ros.interfaces import message_class

        self.registry = registry
        self.box = box
        store = typestore_for(registry.typestore)
        cmd = registry["command"]
        self._message_class, self._qos, self._error = message_class, qos_profile, InterfaceError
        self._roles = {t.name: role for role, t in registry.topics.items()}
        try:  # every class first: a missing interface package fails before the graph is touched
            classes = {r: message_class(registry[r].type, registry[r].name) for r in [*inputs, "command"]}
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
                for r in inputs
            }
            # what rclpy's and rclcpp's time sources subscribe with (ClockQoS): best-effort, keep last 1
            self._clock_pub = self.node.create_publisher(
                clock_cls, CLOCK_TOPIC, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
            )
            self._clock_cls = clock_cls

            def on_command(data: bytes) -> None:
                msg = store.deserialize_cdr(data, cmd.type)
                box.put(header_stamp_ns(msg), msg)

            self._command_sub = self.node.create_subscription(
                classes["command"], cmd.name, on_command, qos_profile(cmd.qos), raw=True
            )
            self._executor = LeanExecutor(context=self.context)
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
            pub = self.publishers.get(m.topic) or self._publisher(m.topic)
            pub.publish(bytes(m.data))

    def _publisher(self, topic: str) -> Any:
        role = self._roles.get(topic)
        if role is None:
            raise DriverError(f"{topic}: the simulator produced a topic the registry does not list")
        spec = self.registry[role]
        try:
            cls = self._message_class(spec.type, spec.name)
        except self._error as err:
            raise DriverError(str(err)) from err
        pub = self.node.create_publisher(cls, spec.name, self._qos(spec.qos))
        self.publishers[topic] = pub
        return pub

    def clock(self, t_ns: int) -> None:
        msg = self._clock_cls()
        msg.clock.sec, msg.clock.nanosec = divmod(t_ns, 1_000_000_000)
        self._clock_pub.publish(msg)

    def wait_matched(self, subscribers: dict[str, int], deadline_s: float, alive: Any = None) -> list[str]:
        """Wait until each topic (CLOCK_TOPIC too) has at least its number of matched subscriptions and `command`
        a matched publisher (a reliable, volatile reader gets nothing sent before it matched); the topics still
        short when the deadline passed (or `alive()` turned False)."""
        cmd_topic = self.registry["command"].name
        end = time.monotonic() + deadline_s

        def short() -> list[str]:
            pubs = {**self.publishers, CLOCK_TOPIC: self._clock_pub}
            out = [t for t, n in subscribers.items() if pubs[t].get_subscription_count() < n]
            return out + ([cmd_topic] if self._command_sub.get_publisher_count() == 0 else [])

        while (missing := short()) and time.monotonic() < end and (alive is None or alive()):
            time.sleep(0.05)
        return missing

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=10.0)
        self.node.destroy_node()
        self.context.try_shutdown()
        self._thread.join(timeout=10.0)
