"""What `roadloop bag play` publishes, with which QoS, and when (pure: no rclpy, table-tested).

* QoS: a topic in the registry gets the registry's (sensor = best-effort, command = reliable,
  latched = reliable + transient-local), so the nodes' subscriptions match; any other topic
  gets what its publishers offered when it was recorded (reliable / transient-local only if
  every recorded publisher offered it, as `ros2 bag play` adapts), else reliable + volatile.
* Timing: a message recorded at bag time t is due at wall time
  `wall_start + (t - play_start) / rate`; `/clock` carries the inverse mapping.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from roadloop_core.bag import BagInfo
from roadloop_core.cli.bag import qos_summary
from roadloop_core.registry import QosProfile, QosSpec, TopicRegistry
from roadloop_vehicle.errors import PlayError

__all__ = ["DEFAULT_QOS", "BagClock", "PlayOptions", "PlayTopic", "offered_qos", "plan_topics", "split_topic_args"]

DEFAULT_QOS = QosSpec(QosProfile.COMMAND, 10)  # reliable + volatile, keep last 10: rclcpp's and rclpy's default


@dataclass(frozen=True)
class PlayOptions:
    rate: float = 1.0
    clock_hz: float | None = None  # None: no /clock
    topics: tuple[str, ...] = ()  # empty: every topic of the bag
    loop: bool = False
    start_offset_s: float = 0.0
    delay_s: float = 0.0
    wait_for_subscribers: bool = False

    def __post_init__(self) -> None:
        if not 0 < self.rate < math.inf:
            raise PlayError(f"--rate {self.rate}: must be a number > 0")
        if self.clock_hz is not None and not 0 < self.clock_hz < math.inf:
            raise PlayError(f"--clock {self.clock_hz}: must be a frequency > 0 Hz")
        if not self.start_offset_s >= 0:
            raise PlayError(f"--start-offset {self.start_offset_s}: must be >= 0 s")
        if not self.delay_s >= 0:
            raise PlayError(f"--delay {self.delay_s}: must be >= 0 s")


@dataclass(frozen=True)
class PlayTopic:
    name: str
    type: str
    qos: QosSpec
    qos_source: str  # "registry" | "bag" | "default"
    message_count: int

    def describe(self) -> str:
        q = self.qos
        qos = f"{'reliable' if q.reliable else 'best_effort'}, {'transient_local' if q.transient_local else 'volatile'}"
        return f"{self.name}  {self.type}  {self.message_count} msgs  qos: {qos}, depth {q.depth} ({self.qos_source})"


def split_topic_args(values: list[str] | None) -> tuple[str, ...]:
    """`--topics /a,/b --topics /c` (or `--topics "/a /b"`) -> ("/a", "/b", "/c")."""
    out: list[str] = []
    for v in values or []:
        out += [t for t in v.replace(",", " ").split() if t not in out]
    return tuple(out)


def offered_qos(text: str) -> QosSpec | None:
    """The QoS to publish a topic with, from the offered_qos_profiles its recording stored (None if none)."""
    profiles = qos_summary(text)
    if not profiles:
        return None
    reliable = all(p["reliability"] == "reliable" for p in profiles)
    latched = all(p["durability"] == "transient_local" for p in profiles)
    depths = [d for p in profiles if isinstance(d := p.get("depth"), int) and d > 0]
    depth = max(depths, default=DEFAULT_QOS.depth)
    if reliable:
        return QosSpec(QosProfile.LATCHED if latched else QosProfile.COMMAND, depth)
    return QosSpec(QosProfile.SENSOR, depth)  # best-effort; transient-local without reliability is not offered


def plan_topics(info: BagInfo, registry: TopicRegistry, wanted: tuple[str, ...] = ()) -> list[PlayTopic]:
    """The topics to publish, in the bag's order; PlayError naming the topic for anything unplayable."""
    names = [t.name for t in info.topics]
    for name in wanted:
        if name not in names:
            raise PlayError(f"{info.path}: --topics {name}: no such topic in the bag; it holds {', '.join(names)}")
    out = []
    for t in info.topics:
        if wanted and t.name not in wanted:
            continue
        if not wanted and "/srv/" in t.type:
            continue  # service events are a record of calls, not topics to publish (ros2 bag play skips them too)
        if t.serialization_format != "cdr":
            raise PlayError(f"{info.path}: {t.name}: serialization format '{t.serialization_format}' is not cdr")
        spec = registry.by_name(t.name)
        if spec is not None:
            qos, source = spec.qos, "registry"
        elif (offered := offered_qos(t.offered_qos_profiles)) is not None:
            qos, source = offered, "bag"
        else:
            qos, source = DEFAULT_QOS, "default"
        out.append(PlayTopic(t.name, t.type, qos, source, t.message_count))
    return out


@dataclass(frozen=True)
class BagClock:
    """The mapping between bag time and wall (monotonic) time of one pass through the bag."""

    play_start_ns: int  # bag time the pass starts at (bag start + start offset)
    wall_start_ns: int
    rate: float

    def due_ns(self, bag_ns: int) -> int:
        """Wall time at which a message recorded at `bag_ns` is published."""
        return self.wall_start_ns + round((bag_ns - self.play_start_ns) / self.rate)

    def bag_ns(self, wall_ns: int) -> int:
        """Bag time at wall time `wall_ns` (what /clock says then)."""
        return self.play_start_ns + round((wall_ns - self.wall_start_ns) * self.rate)
