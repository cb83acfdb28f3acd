"""The lockstep between the simulator and the onboard nodes, without ROS: what to publish, what to wait for.

One policy tick over ROS:

    1. /clock <- the tick's simulation time (the nodes run with use_sim_time: staleness and the
       watchdog measure simulation time, so a slow simulator is never "stale");
    2. every sensor message of the period, in the simulator's order, as the CDR bytes a bag would hold;
    3. wait for the /control/command of each frame the drive node completes in this period: it stamps
       its command with the frame's sensor stamp and the safety node keeps it, so a command answers
       one frame and a watchdog stop (stamped with the node clock) is never mistaken for it.

Which frames complete is not guessed: `FramePredictor` runs the drive node's own observation
assembler on the same messages in the same order (a frame without its odometry yet, or without a
route, completes later or never, and then no command comes for it).

`CommandBox` is where the subscription callback (another thread) drops decoded commands and where the
simulator waits for the one of its tick, with a wall-clock deadline that only a dead node reaches.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterable
from typing import Any

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.registry import TopicRegistry
from roadloop_core.typesys import typestore_for
from roadloop_sim.errors import DriverError
from roadloop_vehicle.errors import ObservationError
from roadloop_vehicle.observation.assembler import ObservationAssembler

__all__ = ["CommandBox", "FramePredictor"]


class FramePredictor:
    """The stamps of the frames the drive node completes from a period's messages (its assembler, run here)."""

    def __init__(self, spec: ObservationSpec, registry: TopicRegistry) -> None:
        self.spec = spec
        self.registry = registry
        self.roles = {t.name: role for role, t in registry.topics.items()}
        self.reset()

    def reset(self) -> None:
        self.assembler = ObservationAssembler(self.spec, self.registry, typestore_for(self.registry.typestore))

    def frames(self, period: Iterable[tuple[str, int, Any]]) -> list[int]:
        stamps: list[int] = []
        for topic, _, msg in period:
            role = self.roles.get(topic)
            if role is None:
                continue
            try:
                stamps += [f.stamp_ns for f in self.assembler.push_decoded(role, msg)]
            except ObservationError:  # the node refuses the frame too: no command answers it
                continue
        return stamps


class CommandBox:
    """Commands by header stamp, filled from a subscription thread; `wait(stamp)` blocks for one."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._by_stamp: dict[int, Any] = {}
        self._newest_stamp: int | None = None
        self.received = 0

    def put(self, stamp_ns: int, command: Any) -> None:
        with self._cond:
            self._by_stamp.setdefault(stamp_ns, command)  # the first command of a stamp is the one applied
            self._newest_stamp = stamp_ns if self._newest_stamp is None else max(self._newest_stamp, stamp_ns)
            self.received += 1
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._by_stamp.clear()
            self._newest_stamp = None

    def wait(self, stamp_ns: int, deadline_s: float, what: str) -> Any:
        """The command stamped `stamp_ns` (removed, with every older one); DriverError after `deadline_s`."""
        end = time.monotonic() + deadline_s
        with self._cond:
            while stamp_ns not in self._by_stamp:
                left = end - time.monotonic()
                if left <= 0:
                    raise DriverError(
                        f"{what}: no command stamped {stamp_ns} ns within {deadline_s:g} s "
                        f"({self.received} command(s) received so far)"
                    )
                self._cond.wait(min(left, 1.0))
            command = self._by_stamp[stamp_ns]
            for s in [s for s in self._by_stamp if s <= stamp_ns]:
                del self._by_stamp[s]
            return command

    def wait_newer(self, stamp_ns: int, deadline_s: float) -> bool:
        """Wait until some command stamped at or after `stamp_ns` came (a node's clock reached it)."""
        end = time.monotonic() + deadline_s
        with self._cond:
            while self._newest_stamp is None or self._newest_stamp < stamp_ns:
                left = end - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.2))
            return True
