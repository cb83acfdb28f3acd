"""Tests on a real ROS 2 graph (Fast DDS on loopback): isolation per test session and a recording listener.

* `ros_graph` (session): this session's own DDS domain. `ROS_DOMAIN_ID` is picked from the pid
  and held with a lock file (the first free id from `pid % 101`, so two sessions on one machine
  never share a domain), discovery stays on localhost (`ROS_AUTOMATIC_DISCOVERY_RANGE=LOCALHOST`),
  ROS logs go to the session's temp folder. It is set in `os.environ`, so every process a test
  starts (node console scripts, `roadloop bag play`) joins the same, private graph.
* `ros_context` (function): an initialised rclpy Context of the test process, shut down after.
* `Listener`: a plain rclpy node on its own executor thread recording raw messages with the
  monotonic time they arrived; tests wait on it with generous deadlines, never fixed sleeps.

Loaded into tests/conftest.py; rclpy is imported only by tests that use these fixtures.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from roadloop_vehicle.nodes.entry import DIE_WITH_PARENT

DOMAIN_IDS = range(1, 102)  # 0 is everyone's default; above 101 Fast DDS ports reach the ephemeral range on Linux
LOCK_DIR = Path(tempfile.gettempdir()) / "roadloop-ros-domains"


@dataclass(frozen=True)
class RosGraph:
    domain_id: int
    log_dir: Path

    def env(self, **extra: str) -> dict[str, str]:
        """The environment for a process that joins this graph (os.environ already holds it)."""
        return {**os.environ, **extra}


def _lock_domain(pid: int) -> tuple[int, int]:
    """(domain id, fd of its held lock): the first id from pid % 101 whose lock no other session holds."""
    LOCK_DIR.mkdir(exist_ok=True)
    ids = list(DOMAIN_IDS)
    start = pid % len(ids)
    for domain in ids[start:] + ids[:start]:
        fd = os.open(LOCK_DIR / f"{domain}.lock", os.O_CREAT | os.O_RDWR, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            continue
        return domain, fd
    raise RuntimeError(f"every ROS domain id {DOMAIN_IDS.start}..{DOMAIN_IDS.stop - 1} is held by another test session")


@pytest.fixture(scope="session")
def ros_graph(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RosGraph]:
    domain, fd = _lock_domain(os.getpid())
    graph = RosGraph(domain, tmp_path_factory.mktemp("ros-log"))
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("ROS_DOMAIN_ID", str(domain))
        mp.setenv("ROS_AUTOMATIC_DISCOVERY_RANGE", "LOCALHOST")
        mp.delenv("ROS_LOCALHOST_ONLY", raising=False)  # deprecated in Jazzy; the range above replaces it
        mp.delenv("ROS_STATIC_PEERS", raising=False)
        mp.setenv("ROS_LOG_DIR", str(graph.log_dir))
        # node processes a test starts die with this session, so a killed run leaves none on the machine
        mp.setenv(DIE_WITH_PARENT, "1")
        yield graph
    os.close(fd)  # releases the lock


@pytest.fixture
def ros_context(ros_graph: RosGraph) -> Iterator[Any]:
    import rclpy
    from rclpy.context import Context
    from rclpy.signals import SignalHandlerOptions

    context = Context()
    rclpy.init(context=context, signal_handler_options=SignalHandlerOptions.NO)
    yield context
    context.try_shutdown()


@dataclass(frozen=True)
class Received:
    topic: str
    data: Any  # the CDR bytes (raw subscriptions) or the message
    t_ns: int  # time.monotonic_ns() when the callback ran


@dataclass
class Listener:
    """Raw subscriptions on their own executor thread; `received` in arrival order."""

    context: Any
    name: str = "roadloop_test_listener"
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        import rclpy
        from rclpy.executors import SingleThreadedExecutor

        self._cond = threading.Condition()
        self.node = rclpy.create_node(self.name, context=self.context, start_parameter_services=False)
        self._executor = SingleThreadedExecutor(context=self.context)
        self._executor.add_node(self.node)
        self._thread = threading.Thread(target=self._spin, name=f"{self.name}-spin", daemon=True)
        self._thread.start()

    def _spin(self) -> None:
        from rclpy.executors import ExternalShutdownException

        with contextlib.suppress(ExternalShutdownException):  # the context shut down under it: done
            self._executor.spin()

    def subscribe(self, topic: str, msg_type: type[Any], qos: Any, *, raw: bool = True) -> None:
        def on_message(msg: Any) -> None:
            with self._cond:
                self.received.append(Received(topic, msg, time.monotonic_ns()))
                self._cond.notify_all()

        self.node.create_subscription(msg_type, topic, on_message, qos, raw=raw)

    def on(self, topic: str) -> list[Received]:
        with self._cond:
            return [r for r in self.received if r.topic == topic]

    def wait_for(self, done: Callable[[list[Received]], bool], timeout_s: float = 120.0) -> bool:
        """Wait until `done(received)` holds (True) or the generous deadline passes (False)."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not done(self.received):
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 1.0))
            return True

    def wait_for_publishers(self, topics: list[str], timeout_s: float = 120.0) -> bool:
        """Wait until this node's graph shows a publisher on every topic (discovery has run)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if all(self.node.count_publishers(t) > 0 for t in topics):
                return True
            time.sleep(0.05)
        return False

    def close(self) -> None:
        self._executor.shutdown(timeout_sec=10.0)
        self.node.destroy_node()
        self._thread.join(timeout=10.0)


@pytest.fixture
def ros_listener(ros_context: Any) -> Iterator[Listener]:
    listener = Listener(ros_context)
    yield listener
    listener.close()
