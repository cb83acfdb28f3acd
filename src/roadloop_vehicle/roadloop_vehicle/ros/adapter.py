"""RosNode: the single thin layer between roadloop's pure cores and rclpy.

Everything a node needs from ROS goes through here, so it is the one place checked
against rclpy's own sources (`make typecheck`):
  * parameters: declared from a config dataclass (dotted names), read back and validated;
  * subscriptions with `raw=True` (serialized CDR bytes, no Python message conversion)
    and publishers fed `bytes` serialized with the rosbags typestore: the bag is the wire;
  * QoS from the topic registry: sensor = best-effort, command = reliable,
    latched = reliable + transient-local;
  * the node clock (`use_sim_time` makes it the replayed bag's /clock).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

import rclpy
from rcl_interfaces.msg import ParameterDescriptor
from rclpy.node import Node
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.timer import Timer
from rclpy.utilities import try_shutdown

from roadloop_core.registry import QosSpec, TopicRegistry
from roadloop_core.typesys import typestore_for
from roadloop_vehicle.ros.interfaces import message_class
from roadloop_vehicle.ros.params import flatten, validated

__all__ = ["RosNode", "qos_profile", "run_node"]

T = TypeVar("T")


def qos_profile(spec: QosSpec) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=spec.depth,
        reliability=ReliabilityPolicy.RELIABLE if spec.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if spec.transient_local else DurabilityPolicy.VOLATILE,
    )


class RosNode:
    """One rclpy node; callbacks receive (cdr_bytes, now_ns)."""

    def __init__(self, name: str) -> None:
        self.node = Node(name)
        self.name = name
        self.registry: TopicRegistry | None = None
        self._keep: list[Any] = []

    # -- parameters ------------------------------------------------------------------------
    def parameters(self, cls: type[T]) -> T:
        """Declare every field of `cls` (defaults from the dataclass) and return the validated values."""
        defaults = flatten(cls())
        values: dict[str, Any] = {}
        for name, default in defaults.items():
            # dynamic typing: `50` for a float in YAML is fine; our validation says what is wrong, in one line
            param = self.node.declare_parameter(name, default, ParameterDescriptor(dynamic_typing=True))
            values[name] = param.value
        return validated(cls, values, f"{self.name} parameters")

    # -- topics ----------------------------------------------------------------------------
    def use_registry(self, registry: TopicRegistry) -> None:
        self.registry = registry
        self.typestore = typestore_for(registry.typestore)

    def _reg(self) -> TopicRegistry:
        if self.registry is None:
            raise RuntimeError("call use_registry() before creating topics")
        return self.registry

    def subscribe(self, role: str, callback: Callable[[bytes, int], None]) -> None:
        spec = self._reg()[role]

        def on_message(data: bytes) -> None:
            callback(data, self.now_ns())

        sub = self.node.create_subscription(
            message_class(spec.type, spec.name), spec.name, on_message, qos_profile(spec.qos), raw=True
        )
        self._keep.append(sub)

    def publisher(self, role: str) -> Callable[[Any], None]:
        """A function publishing a rosbags message object for `role` as serialized bytes."""
        spec = self._reg()[role]
        pub = self.node.create_publisher(message_class(spec.type, spec.name), spec.name, qos_profile(spec.qos))
        store, typename = self.typestore, spec.type

        def publish(msg: Any) -> None:
            pub.publish(bytes(store.serialize_cdr(msg, typename)))

        self._keep.append(pub)
        return publish

    def timer(self, period_s: float, callback: Callable[[], None]) -> Timer:
        t = self.node.create_timer(period_s, callback)
        self._keep.append(t)
        return t

    def now_ns(self) -> int:
        return int(self.node.get_clock().now().nanoseconds)

    def info(self, text: str) -> None:
        self.node.get_logger().info(text)

    def warn(self, text: str) -> None:
        self.node.get_logger().warning(text)

    def error(self, text: str) -> None:
        self.node.get_logger().error(text)


def run_node(name: str, wire: Callable[[RosNode], Any], args: list[str] | None = None) -> int:
    """rclpy.init, build the node, let `wire` connect the pure core, spin until shutdown.

    A RoadloopError during wiring (bad parameter, refused bundle) is one log line and exit 2.
    """
    from roadloop_core.errors import RoadloopError

    rclpy.init(args=args)
    node: RosNode | None = None
    try:
        node = RosNode(name)
        keep = wire(node)  # noqa: F841 - the wired core must live as long as the node spins
        rclpy.spin(node.node)
        return 0
    except RoadloopError as err:
        if node is not None:
            node.error(str(err))
        else:
            print(f"{name}: error: {err}")
        return 2
    except KeyboardInterrupt:
        return 0
    finally:
        if node is not None:
            node.node.destroy_node()
        try_shutdown()
