"""NodeIO: what node wiring needs from ROS. `RosNode` (rclpy) implements it; tests use an in-process bus.

Keeping the wiring on this protocol lets the drive and safety nodes' wiring run
in tests here, where rclpy cannot, through exactly the code the car runs.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from roadloop_core.registry import TopicRegistry

__all__ = ["NodeIO"]

T = TypeVar("T")


class NodeIO(Protocol):
    name: str

    def parameters(self, cls: type[T]) -> T: ...

    def use_registry(self, registry: TopicRegistry) -> None: ...

    def subscribe(self, role: str, callback: Callable[[bytes, int], None]) -> None: ...

    def publisher(self, role: str) -> Callable[[Any], None]: ...

    def timer(self, period_s: float, callback: Callable[[], None], *, steady: bool = False) -> Any:
        """`callback` every `period_s` of `monotonic_ns` time; `steady`: of the steady clock even under
        use_sim_time (for work that follows the machine, not the data, like watching for a new model)."""
        ...

    def now_ns(self) -> int:
        """The node clock (wall time, or a replay's /clock): what message stamps carry."""
        ...

    def monotonic_ns(self) -> int:
        """What staleness and the watchdog measure with: a clock that never steps back (an NTP or GPS
        correction moves the node clock, not this one); a replay's /clock under `use_sim_time`."""
        ...

    def info(self, text: str) -> None: ...

    def warn(self, text: str) -> None: ...

    def error(self, text: str) -> None: ...
