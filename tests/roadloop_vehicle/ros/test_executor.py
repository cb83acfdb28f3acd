"""LeanExecutor on a real DDS graph: every kind of callback the nodes use is served, what it cannot serve is refused.

The peer is stock rclpy (its own SingleThreadedExecutor on another thread): a publisher, a parameter
client, a subscriber. The node processes themselves run on LeanExecutor in tests/roadloop_vehicle/nodes.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest

pytestmark = pytest.mark.needs("rclpy")

DEADLINE_S = 120.0  # generous: discovery on a loaded machine


def _wait(done: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DEADLINE_S
    while not done():
        assert time.monotonic() < deadline, f"not within {DEADLINE_S} s: {what}"
        time.sleep(0.01)


@dataclass
class Spinning:
    """A node spun by an executor on its own thread; what spin() raised, if anything."""

    node: Any
    executor: Any
    thread: threading.Thread = field(init=False)
    raised: list[BaseException] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.executor.add_node(self.node)
        self.thread = threading.Thread(target=self._spin, daemon=True)
        self.thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        try:
            self.executor.spin()
        except ExternalShutdownException:
            pass
        except BaseException as err:  # the test reads it
            self.raised.append(err)

    def stop(self) -> None:
        self.executor.shutdown(timeout_sec=10.0)
        self.thread.join(timeout=30.0)
        with contextlib.suppress(Exception):
            self.node.destroy_node()


@pytest.fixture
def spin(ros_context: Any) -> Iterator[Callable[..., Spinning]]:
    """spin(node, lean=True): spin `node` on a LeanExecutor (or rclpy's own) until the test ends."""
    from rclpy.executors import SingleThreadedExecutor

    from roadloop_vehicle.ros.executor import LeanExecutor

    started: list[Spinning] = []

    def start(node: Any, lean: bool = True) -> Spinning:
        executor = (LeanExecutor if lean else SingleThreadedExecutor)(context=ros_context)
        started.append(Spinning(node, executor))
        return started[-1]

    yield start
    for s in reversed(started):
        s.stop()


def _node(context: Any, name: str, **kw: Any) -> Any:
    import rclpy

    return rclpy.create_node(name, context=context, **kw)


def test_subscriptions_timers_and_parameter_services_run(ros_context: Any, spin: Callable[..., Spinning]) -> None:
    from rcl_interfaces.srv import GetParameters
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from rclpy.subscription import Subscription
    from std_msgs.msg import String

    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    lean = _node(ros_context, "roadloop_test_lean")  # with rclpy's parameter services
    lean.declare_parameter("answer", 42)
    raw: list[bytes] = []
    typed: list[str] = []
    with_info: list[dict[str, Any]] = []
    ticks: list[int] = []
    lean.create_subscription(String, "/lean_test/raw", raw.append, qos, raw=True)
    lean.create_subscription(String, "/lean_test/typed", lambda m: typed.append(m.data), qos)
    topics = ["raw", "typed"]
    if hasattr(Subscription, "CallbackType"):  # Jazzy's (message, info) callbacks; Humble has none
        lean.create_subscription(String, "/lean_test/info", lambda m, info: with_info.append(info), qos)
        topics.append("info")
    lean.create_timer(0.05, lambda: ticks.append(time.monotonic_ns()))
    spin(lean)

    peer = _node(ros_context, "roadloop_test_peer", start_parameter_services=False)
    pubs = {t: peer.create_publisher(String, f"/lean_test/{t}", qos) for t in topics}
    client = peer.create_client(GetParameters, "/roadloop_test_lean/get_parameters")
    spin(peer, lean=False)
    _wait(lambda: all(p.get_subscription_count() >= 1 for p in pubs.values()), "the lean node's subscriptions")
    for i in range(5):
        for p in pubs.values():
            p.publish(String(data=f"m{i}"))
    expect_info = 5 if "info" in topics else 0
    _wait(lambda: len(raw) == 5 and len(typed) == 5 and len(with_info) == expect_info, "5 messages on each topic")
    assert typed == [f"m{i}" for i in range(5)]
    assert all(isinstance(b, bytes) and b"m" in b for b in raw)  # serialized CDR, not a message object
    assert all("source_timestamp" in info for info in with_info)
    _wait(lambda: len(ticks) >= 5, "5 timer ticks")

    assert client.wait_for_service(timeout_sec=DEADLINE_S)
    future = client.call_async(GetParameters.Request(names=["answer"]))
    _wait(future.done, "the parameter service's answer")
    assert [v.integer_value for v in future.result().values] == [42]


def test_an_entity_made_while_spinning_is_served(ros_context: Any, spin: Callable[..., Spinning]) -> None:
    """The sim makes a publisher the moment it first meets a topic: a new entity wakes the executor (rclpy's
    Node does that), which rebuilds its wait set."""
    from rclpy.qos import QoSProfile, ReliabilityPolicy
    from std_msgs.msg import String

    qos = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
    lean = _node(ros_context, "roadloop_test_lean_late", start_parameter_services=False)
    spin(lean)
    got: list[str] = []
    lean.create_subscription(String, "/lean_test/late", lambda m: got.append(m.data), qos)
    peer = _node(ros_context, "roadloop_test_peer_late", start_parameter_services=False)
    pub = peer.create_publisher(String, "/lean_test/late", qos)
    _wait(lambda: pub.get_subscription_count() >= 1, "the late subscription's discovery")
    deadline = time.monotonic() + DEADLINE_S
    while not got and time.monotonic() < deadline:  # until the reader has matched (earlier ones are not kept)
        pub.publish(String(data="late"))
        time.sleep(0.1)
    assert got and got[0] == "late"
    peer.destroy_node()


def test_a_service_client_and_a_task_are_refused_not_hung(ros_context: Any, spin: Callable[..., Spinning]) -> None:
    from rcl_interfaces.srv import GetParameters

    from roadloop_vehicle.ros.executor import LeanExecutor

    node = _node(ros_context, "roadloop_test_lean_client", start_parameter_services=False)
    node.create_client(GetParameters, "/nobody/get_parameters")
    s = spin(node)
    s.thread.join(timeout=DEADLINE_S)
    assert not s.thread.is_alive()
    assert len(s.raised) == 1 and "service client (/nobody/get_parameters)" in str(s.raised[0])
    with pytest.raises(RuntimeError, match="not tasks"):
        LeanExecutor(context=ros_context).create_task(lambda: None)


def test_a_shutdown_context_ends_spin(ros_context: Any) -> None:
    """What a SIGTERM does to a node (rclpy's handler shuts the context down): spin returns at once."""
    from rclpy.executors import ExternalShutdownException

    from roadloop_vehicle.ros.executor import LeanExecutor

    node = _node(ros_context, "roadloop_test_lean_shutdown", start_parameter_services=False)
    executor = LeanExecutor(context=ros_context)
    executor.add_node(node)
    ended = threading.Event()

    def run() -> None:
        with contextlib.suppress(ExternalShutdownException):
            executor.spin()
        ended.set()

    threading.Thread(target=run, daemon=True).start()
    time.sleep(0.2)  # in its wait (no timer: only the shutdown can wake it)
    ros_context.try_shutdown()
    assert ended.wait(DEADLINE_S)
    node.destroy_node()
