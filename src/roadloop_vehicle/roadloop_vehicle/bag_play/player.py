"""`roadloop bag play`: publish a bag's recorded CDR bytes onto the ROS 2 graph at the recorded timing.

Raw publishers (`Publisher.publish(bytes)`): the bytes go out as they were recorded, never
decoded, so what a subscriber receives is exactly what the bag holds. rclpy is imported
here, lazily, so the `roadloop` command and machines without ROS 2 are unaffected.

Shutdown: SIGINT and SIGTERM stop the playback between two messages; the player then
waits (bounded) for reliable subscribers to acknowledge what was sent and exits 130 on
SIGINT, 0 on SIGTERM (a stop that was asked for), without a traceback.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from roadloop_core.bag import BagReader, open_bag
from roadloop_core.registry import TopicRegistry
from roadloop_vehicle.bag_play.plan import BagClock, PlayOptions, PlayTopic, plan_topics
from roadloop_vehicle.errors import InterfaceError, PlayError

__all__ = ["PlayResult", "play_bag"]

ACK_WAIT_S = 5.0  # at the end: how long reliable subscribers get to acknowledge the last messages
CLOCK_TOPIC = "/clock"


@dataclass(frozen=True)
class PlayResult:
    messages: int
    topics: list[PlayTopic]
    passes: int
    wall_s: float  # from the first message's due time to the end (waits before it excluded)
    stopped_by: int | None  # the signal that stopped playback, None when it ran to the end

    @property
    def exit_code(self) -> int:
        return 130 if self.stopped_by == signal.SIGINT else 0


class _Stop:
    """Set by SIGINT/SIGTERM; every wait of the player is a wait on it."""

    def __init__(self) -> None:
        self.event = threading.Event()
        self.signum: int | None = None

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        self.signum = signum
        self.event.set()

    def sleep_until(self, deadline_ns: int) -> bool:
        """Wait until monotonic time `deadline_ns`; False if stopped first."""
        delay = (deadline_ns - time.monotonic_ns()) / 1e9
        return not self.event.wait(delay) if delay > 0 else not self.event.is_set()


@contextmanager
def _signals(stop: _Stop) -> Iterator[None]:
    previous = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)


def _import_rclpy() -> Any:
    try:
        import rclpy
    except ImportError as err:  # no ROS 2 here, or its libraries are not on the library path
        first = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise PlayError(f"playing a bag needs ROS 2 (rclpy), which cannot be imported here: {first}") from err
    return rclpy


def _progress(quiet: bool) -> Progress:
    return Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        transient=True,
        disable=quiet or not sys.stderr.isatty(),
    )


@dataclass
class _PassProgress:
    """Advances the progress bar by one published message, showing the bag time reached."""

    progress: Progress
    task: Any
    pass_no: int
    play_start_ns: int
    span_s: float

    def __call__(self, bag_ns: int) -> None:
        done = (bag_ns - self.play_start_ns) / 1e9
        self.progress.update(self.task, advance=1, description=f"pass {self.pass_no} {done:7.2f}/{self.span_s:.2f} s")


class _Graph:
    """The rclpy side: one node with a raw publisher per topic, and /clock."""

    def __init__(self, topics: list[PlayTopic], clock: bool) -> None:
        rclpy = _import_rclpy()
        from rclpy.context import Context
        from rclpy.qos import QoSProfile, ReliabilityPolicy
        from rclpy.signals import SignalHandlerOptions

        from roadloop_vehicle.ros.adapter import qos_profile
        from roadloop_vehicle.ros.interfaces import message_class

        classes = {}
        for t in topics:  # every class first: a missing package fails before anything is published
            try:
                classes[t.name] = message_class(t.type, t.name)
            except InterfaceError as err:
                raise PlayError(f"{err}; leave the topic out with --topics") from err
        self.context = Context()
        rclpy.init(context=self.context, signal_handler_options=SignalHandlerOptions.NO)
        try:
            self.node = rclpy.create_node(
                "roadloop_bag_player", context=self.context, enable_rosout=False, start_parameter_services=False
            )
        except BaseException:
            self.context.try_shutdown()
            raise
        self.publishers = {
            t.name: self.node.create_publisher(classes[t.name], t.name, qos_profile(t.qos)) for t in topics
        }
        self.clock: Callable[[int], None] | None = None
        if clock:
            clock_cls = message_class("rosgraph_msgs/msg/Clock", CLOCK_TOPIC)
            # what rclpy's and rclcpp's time sources subscribe with (ClockQoS): best-effort, keep last 1
            pub = self.node.create_publisher(
                clock_cls, CLOCK_TOPIC, QoSProfile(depth=1, reliability=ReliabilityPolicy.BEST_EFFORT)
            )

            def publish_clock(bag_ns: int) -> None:
                msg = clock_cls()
                msg.clock.sec, msg.clock.nanosec = divmod(bag_ns, 1_000_000_000)
                pub.publish(msg)

            self.clock = publish_clock

    def unmatched(self) -> list[str]:
        return [name for name, pub in self.publishers.items() if pub.get_subscription_count() == 0]

    def close(self, wait_for_acks: bool) -> None:
        from rclpy.duration import Duration

        deadline = time.monotonic() + ACK_WAIT_S
        for pub in self.publishers.values() if wait_for_acks else []:  # best-effort publishers return at once
            pub.wait_for_all_acked(Duration(seconds=max(0.0, deadline - time.monotonic())))
        self.node.destroy_node()
        self.context.try_shutdown()


def _play_pass(
    reader: BagReader,
    graph: _Graph,
    topics: list[str],
    clock: BagClock,
    opts: PlayOptions,
    stop: _Stop,
    tick: Callable[[int], None],
) -> int:
    """One pass through the bag from the start offset; the number of messages published."""
    period_ns = round(1e9 / opts.clock_hz) if opts.clock_hz else 0
    next_tick = clock.wall_start_ns
    sent = 0

    def clock_until(wall_ns: int) -> bool:
        nonlocal next_tick
        while graph.clock is not None and next_tick <= wall_ns:
            if not stop.sleep_until(next_tick):
                return False
            graph.clock(clock.bag_ns(next_tick))
            next_tick += period_ns
        return True

    for raw in reader.messages(topics):
        if raw.timestamp_ns < clock.play_start_ns:
            continue
        due = clock.due_ns(raw.timestamp_ns)
        if not clock_until(due) or not stop.sleep_until(due):
            return sent
        graph.publishers[raw.topic].publish(bytes(raw.data))
        sent += 1
        tick(raw.timestamp_ns)
    return sent


def play_bag(
    path: Path,
    registry: TopicRegistry,
    opts: PlayOptions,
    *,
    quiet: bool = False,
    log: Callable[[str], None] = lambda s: print(s, file=sys.stderr),
) -> PlayResult:
    """Publish `path` onto the ROS 2 graph as `opts` says; returns when done or stopped by a signal."""
    stop = _Stop()
    with _signals(stop), open_bag(path) as reader:
        info = reader.info
        topics = plan_topics(info, registry, opts.topics)
        play_start = info.start_ns + round(opts.start_offset_s * 1e9)
        if info.message_count and play_start > info.end_ns:
            raise PlayError(
                f"{path}: --start-offset {opts.start_offset_s} s is past the bag's end ({info.duration_s:.3f} s)"
            )
        graph = _Graph(topics, clock=opts.clock_hz is not None)
        for t in topics:
            log(f"publishing {t.describe()}")
        if opts.clock_hz is not None:
            log(f"publishing {CLOCK_TOPIC}  rosgraph_msgs/msg/Clock  at {opts.clock_hz:g} Hz in bag time")
        sent = passes = 0
        started = time.monotonic()
        try:
            if opts.wait_for_subscribers and topics:
                if graph.unmatched():
                    log(f"waiting for a subscriber on {', '.join(graph.unmatched())} (Ctrl-C to stop)")
                while graph.unmatched() and not stop.event.wait(0.05):
                    pass
            stop.event.wait(opts.delay_s)
            started = time.monotonic()  # wall time is the playback's, not the wait's
            names = [t.name for t in topics]
            # the bar's total: every message, unless a start offset skips some
            total = sum(t.message_count for t in topics) if not opts.start_offset_s else None
            span_s = max(info.end_ns - play_start, 0) / 1e9
            while not stop.event.is_set() and names:
                passes += 1
                with _progress(quiet) as progress:
                    tick = _PassProgress(progress, progress.add_task("", total=total), passes, play_start, span_s)
                    clock = BagClock(play_start, time.monotonic_ns(), opts.rate)
                    this_pass = _play_pass(reader, graph, names, clock, opts, stop, tick)
                sent += this_pass
                if not opts.loop or not this_pass:
                    break
        finally:
            graph.close(wait_for_acks=not stop.event.is_set())
        return PlayResult(sent, topics, passes, time.monotonic() - started, stop.signum)
