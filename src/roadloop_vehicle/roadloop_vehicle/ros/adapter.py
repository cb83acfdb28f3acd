"""RosNode: the single thin layer between roadloop's pure cores and rclpy.

Everything a node needs from ROS goes through here, so it is the one place checked
against rclpy's own sources (`make typecheck`):
  * parameters: declared from a config dataclass's schema (dotted names, statically typed, with
    description, range and read_only in the ParameterDescriptor), read back and validated;
  * subscriptions with `raw=True` (serialized CDR bytes, no Python message conversion)
    and publishers fed `bytes` serialized with the rosbags typestore: the bag is the wire;
  * QoS from the topic registry: sensor = best-effort, command = reliable,
    latched = reliable + transient-local;
  * the node clock for message stamps (`use_sim_time` makes it the replayed bag's /clock), and
    the steady clock for staleness, the watchdog and timers, so a step of the wall clock (an NTP or
    GPS correction) neither delays nor fakes the detection of a dead sensor or node; under
    `use_sim_time` both follow /clock (a replay is the only time there is).
"""

from __future__ import annotations

import gc
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

import rclpy
from rcl_interfaces.msg import FloatingPointRange, IntegerRange, ParameterDescriptor
from rclpy.clock import Clock, ROSClock
from rclpy.clock_type import ClockType
from rclpy.exceptions import InvalidParameterTypeException, InvalidParameterValueException
from rclpy.impl.implementation_singleton import rclpy_implementation as _rclpy
from rclpy.node import Node
from rclpy.parameter import Parameter
from rclpy.qos import DurabilityPolicy, HistoryPolicy, QoSProfile, ReliabilityPolicy
from rclpy.timer import Timer
from rclpy.utilities import ok, try_shutdown

from roadloop_core.errors import ConfigError
from roadloop_core.param_schema import build_params, validate_parameter
from roadloop_core.registry import QosSpec, TopicRegistry
from roadloop_core.typesys import typestore_for
from roadloop_vehicle.ros.interfaces import message_class
from roadloop_vehicle.ros.params import Declaration, declarations

__all__ = ["RosNode", "qos_profile", "run_node"]

T = TypeVar("T")
_ROS_PREFIXES = ("qos_overrides.",)


def qos_profile(spec: QosSpec) -> QoSProfile:
    return QoSProfile(
        history=HistoryPolicy.KEEP_LAST,
        depth=spec.depth,
        reliability=ReliabilityPolicy.RELIABLE if spec.reliable else ReliabilityPolicy.BEST_EFFORT,
        durability=DurabilityPolicy.TRANSIENT_LOCAL if spec.transient_local else DurabilityPolicy.VOLATILE,
    )


def descriptor(d: Declaration) -> ParameterDescriptor:
    """The rcl_interfaces descriptor of one declared parameter (what `ros2 param describe` shows)."""
    desc = ParameterDescriptor(
        name=d.name,
        type=Parameter.Type[d.type].value,
        description=d.description,
        additional_constraints=d.additional_constraints,
        read_only=d.read_only,
    )
    if d.floating_point_range is not None:
        lo, hi = d.floating_point_range
        desc.floating_point_range = [FloatingPointRange(from_value=lo, to_value=hi, step=0.0)]
    if d.integer_range is not None:
        lo_i, hi_i = d.integer_range
        desc.integer_range = [IntegerRange(from_value=lo_i, to_value=hi_i, step=1)]
    return desc


class RosNode:
    """One rclpy node; callbacks receive (cdr_bytes, now_ns)."""

    def __init__(self, name: str) -> None:
        self.node = Node(name)
        self.name = name
        self.registry: TopicRegistry | None = None
        self._keep: list[Any] = []

    # -- parameters ------------------------------------------------------------------------
    def parameters(self, cls: type[T]) -> T:
        """Declare every parameter of `cls` from its schema and return the validated config.

        Required parameters are declared statically typed without a value (the params file must
        give one). A value from the params file is checked against the schema before rclpy sees it,
        so a bad one reads as it does in replay; rclpy's own type/range refusal is the backstop.
        Either way it is one ConfigError naming the node and the parameter.
        """
        # rclpy keeps the --params-file values here and has no public accessor; without it, rclpy's check speaks
        overrides: dict[str, Any] = getattr(self.node, "_parameter_overrides", {})
        values: dict[str, Any] = {}
        decls = declarations(cls)
        self._refuse_unknown(overrides, cls, {d.name for d in decls})
        for d in decls:
            if d.name in overrides:
                reason = validate_parameter(cls, d.name, overrides[d.name].value)
                if reason is not None:
                    raise ConfigError(f"{self.name}.{reason}")
            initial: Any = Parameter.Type[d.type] if d.required else d.default
            try:
                param = self.node.declare_parameter(d.name, initial, descriptor(d))
            except (InvalidParameterTypeException, InvalidParameterValueException) as err:
                raise ConfigError(f"{self.name}.{d.name}: {err}") from None
            if param.type_ is not Parameter.Type.NOT_SET:
                values[d.name] = list(param.value) if d.type == "STRING_ARRAY" else param.value
        return build_params(
            cls, values, self.name, missing_hint=" (run the node with --ros-args --params-file config/vehicle.yaml)"
        )

    def _refuse_unknown(self, overrides: dict[str, Any], cls: type[Any], declared: set[str]) -> None:
        """A params-file key this node does not declare is a typo: refused in replay's words.

        rclpy's own parameters (`use_sim_time`, `start_type_description_service`, any it declared
        before us) and `qos_overrides.*` are ROS's, not ours.
        """
        unknown = sorted(
            n
            for n in overrides
            if n not in declared and not n.startswith(_ROS_PREFIXES) and not self.node.has_parameter(n)
        )
        if unknown:
            raise ConfigError(
                f"{self.name}.{unknown[0]}: not a parameter of {cls.__name__} (from the params file or -p)"
            )

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

    def _sim_time(self) -> bool:
        clock = self.node.get_clock()
        return isinstance(clock, ROSClock) and bool(clock.ros_time_is_active)

    def timer(self, period_s: float, callback: Callable[[], None], *, steady: bool = False) -> Timer:
        # (ClockType's import is ignored for mypy: Humble defines it in rclpy.clock, Jazzy only re-exports it there)
        clock = None if self._sim_time() and not steady else Clock(clock_type=ClockType.STEADY_TIME)
        t = self.node.create_timer(period_s, callback, clock=clock)
        self._keep.append(t)
        return t

    def now_ns(self) -> int:
        return int(self.node.get_clock().now().nanoseconds)

    def monotonic_ns(self) -> int:
        return self.now_ns() if self._sim_time() else time.monotonic_ns()

    def info(self, text: str) -> None:
        self.node.get_logger().info(text)

    def warn(self, text: str) -> None:
        self.node.get_logger().warning(text)

    def error(self, text: str) -> None:
        self.node.get_logger().error(text)


SHUTDOWN_WAKE_S = 0.5


def run_node(name: str, wire: Callable[[RosNode], Any], args: list[str] | None = None) -> int:
    """rclpy.init, build the node, let `wire` connect the pure core, spin until shutdown.

    The exit status says what happened, so `ros2 launch`, systemd and `docker stop` report it right:
      * 0: shut down by SIGINT or SIGTERM (rclpy's handlers shut the context down and spin raises
        ExternalShutdownException, or creating a topic raises RCLError when the signal came during
        wiring);
      * 2: one line, no traceback, when the node cannot start: a bad ROS argument (rclpy.init's
        RCLError), a RoadloopError during wiring (bad or unknown parameter, missing message package,
        refused bundle).
    """
    from rclpy.executors import ExternalShutdownException

    from roadloop_core.errors import RoadloopError
    from roadloop_vehicle.ros.executor import LeanExecutor

    try:
        rclpy.init(args=args)
    except (
        _rclpy.RCLError,
        _rclpy.UnknownROSArgsError,
        ValueError,
    ) as err:  # a malformed --ros-args (e.g. an unknown flag, a bad remap)
        print(f"{name}: error: bad ROS arguments: {_first_line(err)}", file=sys.stderr)
        return 2
    node: RosNode | None = None
    try:
        # The executor is made first: one made after a signal shut the context down fails half-built, and
        # its __del__ then prints a traceback on the way out.
        executor = LeanExecutor()
        node = RosNode(name)
        keep = wire(node)  # noqa: F841 - the wired core must live as long as the node spins
        # Under use_sim_time a node whose timers all run on /clock waits in rcl_wait without a timeout once
        # /clock stops; when the signal's wake-up is missed there (seen: safety_node ignoring SIGTERM about once
        # in 15 stops on a loaded machine) nothing else wakes it. A steady no-op timer bounds that wait.
        node.timer(SHUTDOWN_WAKE_S, lambda: None, steady=True)
        executor.add_node(node.node)
        # Everything built so far (~50k objects: modules, typestores, the node) lives as long as the process.
        # A full collection walks them all (17-27 ms, measured at start-up in each node); spinning allocates
        # little (9 young collections in 40 s in the drive node), so one would come every few minutes, inside
        # a callback. Frozen, they are out of every collection's sight.
        gc.collect()
        gc.freeze()
        executor.spin()
        return 0
    except RoadloopError as err:
        print(f"{name}: error: {err}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, ExternalShutdownException):
        return 0
    except _rclpy.RCLError:
        if not ok():  # a signal shut the context down while the node was still being wired: a clean stop
            return 0
        raise
    finally:
        if node is not None:
            node.node.destroy_node()
        try_shutdown()


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__
