"""SafetyCore: the supervisor, its watchdog and diagnostics (safety_node runs it, replay and the simulator too).

Commands are judged as they arrive (`on_command`). A timer calls `tick`: when no
command came for longer than command_raw's staleness (or none came since the watchdog
started, at the first `tick`), the supervisor runs anyway with no command, so a policy that
stops or never starts publishing (dead node, stalled camera, no model) still ends in
a controlled stop with its reason. Every `now_ns` here is the clock staleness is
measured on: monotonic on the car (safety_node), the bag's clock in a replay.

The watchdog decides on a fixed grid: one decision per tick period, at the slot's own time
(`slot * period + period / 2`), whenever the caller looks in that slot. So what it decides
does not depend on when within the slot a timer happened to run: a node whose timer runs on a
replayed /clock and a replay that looks at every message decide the same stops at the same times.
The half-period phase keeps the slots off the 10 Hz grid that camera stamps usually sit on.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
import numpy.typing as npt

from roadloop_core.registry import TopicRegistry
from roadloop_core.typesys import typestore_for
from roadloop_vehicle.control.controller import Command
from roadloop_vehicle.diagnostics import LEVEL_ERROR, LEVEL_OK, LEVEL_WARN, Status
from roadloop_vehicle.limits import VehicleLimits
from roadloop_vehicle.output_messages import diagnostics_msg
from roadloop_vehicle.safety.supervisor import SafetyConfig, SafetyInput, SafetyOutput, SafetySupervisor, State

__all__ = ["SafetyCore", "safety_status", "watchdog_slot_ns"]


def watchdog_slot_ns(now_ns: int, period_ns: int) -> int:
    """The time of the watchdog slot `now_ns` falls in: the latest `k * period + period / 2` at or before it."""
    phase = period_ns // 2
    return (now_ns - phase) // period_ns * period_ns + phase


def safety_status(out: SafetyOutput) -> Status:
    """`roadloop/safety`: OK when active, ERROR in the fallback (with its reason), WARN otherwise."""
    level = {State.ACTIVE: LEVEL_OK, State.FALLBACK: LEVEL_ERROR}.get(out.state, LEVEL_WARN)
    return (
        level,
        "roadloop/safety",
        out.reason or out.state.value,
        {"state": out.state.value, "faults": ",".join(out.faults)},
    )


class SafetyCore:
    def __init__(
        self,
        config: SafetyConfig,
        limits: VehicleLimits,
        registry: TopicRegistry,
        diagnostics_period_s: float,
        *,
        observed_roles: Sequence[str],
    ) -> None:
        """`observed_roles`: the model's inputs to watch (`supervisor.observed_roles(observation spec)`)."""
        self.registry = registry
        self.supervisor = SafetySupervisor(config, limits, registry, observed_roles=observed_roles)
        cmd = registry["command_raw"]
        self.watchdog_after_ns = int(cmd.stale_after_s(registry.stale_factor) * 1e9)
        self.tick_period_s = 1.0 / cmd.rate_hz
        self._diag_period_ns = int(diagnostics_period_s * 1e9)
        self._period_ns = int(self.tick_period_s * 1e9)
        self._last_diag_ns: int | None = None
        self._last_command_ns: int | None = None
        self._last_slot: int | None = None  # the latest slot's time
        self._watch_since_ns: int | None = None
        self.decided_at_ns: int | None = None  # the time of the latest decision (a watchdog slot's own time)
        self.fallback_entries = 0
        self.typestore = typestore_for(registry.typestore)

    def on_command(
        self,
        now_ns: int,
        last_seen: Mapping[str, int | None],
        command: Command | None,
        waypoints: npt.NDArray[np.float32] | None = None,
        target_speed: float | None = None,
        model_available: bool = True,
    ) -> SafetyOutput:
        self._last_command_ns = now_ns
        self.decided_at_ns = now_ns
        seen = {**last_seen, "command_raw": now_ns}
        return self._step(SafetyInput(now_ns, seen, command, waypoints, target_speed, model_available))

    @property
    def started(self) -> bool:
        return self._watch_since_ns is not None

    def start(self, now_ns: int) -> None:
        """Watch from `now_ns` on: until a first command arrives, every tick commands a stop.

        The first `tick` starts the watchdog when nothing did: safety_node's first timer call (so the
        actuators get stop commands and /diagnostics at the watchdog's rate even when drive_node never
        starts), a replay's first message (a replay models a safety node already running when the
        recording began).
        """
        self._watch_since_ns = now_ns

    def tick(
        self, now_ns: int, last_seen: Mapping[str, int | None], model_available: bool = True
    ) -> SafetyOutput | None:
        """The watchdog: a decision without a command in a new slot, once commands are overdue.

        Called at least twice per tick period (the node's timer) or on every message (replay): each
        slot is decided once, at the slot's own time, which `decided_at_ns` then holds.
        """
        if self._watch_since_ns is None:
            self.start(now_ns)
        at = watchdog_slot_ns(now_ns, self._period_ns)
        if self._last_slot is not None and at <= self._last_slot:
            return None
        self._last_slot = at
        assert self._watch_since_ns is not None
        if at < self._watch_since_ns:
            return None
        last = self._last_command_ns
        if last is not None and at - last <= self.watchdog_after_ns:
            return None
        self.decided_at_ns = at
        seen = {**last_seen, "command_raw": last}  # None before the first command: stale
        return self._step(SafetyInput(at, seen, None, model_available=model_available))

    def frame_time(self, stamp_ns: int, now_ns: int, offset_ns: int = 0) -> int:
        """When a frame is judged: its sensor stamp on the staleness clock (`offset_ns`: staleness clock minus
        the stamps' clock), unless that is more than the watchdog's staleness before `now_ns` or a period
        after it (a stepped clock, a stuck stamp): then its arrival `now_ns`.

        The stamp makes the supervisor's time steps those between the frames, so a replay and a node fed
        the same bag (its /clock) rate-limit and ramp alike, whenever the frame happened to arrive.
        """
        t = stamp_ns + offset_ns
        if now_ns - self.watchdog_after_ns <= t <= now_ns + self._period_ns:
            return t
        return now_ns

    def _step(self, inp: SafetyInput) -> SafetyOutput:
        out = self.supervisor.step(inp)
        if out.changed and out.state is State.FALLBACK:
            self.fallback_entries += 1
        return out

    def diagnostics(
        self,
        now_ns: int,
        out: SafetyOutput,
        extra: list[Status] | None = None,
        news: bool = False,
        stamp_ns: int | None = None,
    ) -> Callable[[], Any] | None:
        """When due (each period, on a state change, or on `news`): what builds the DiagnosticArray (safety
        status + `extra`), called when it is sent, so the command it follows goes out first.

        `now_ns` is the clock the period is measured on; `stamp_ns` (default `now_ns`) the message's stamp.
        """
        due = self._last_diag_ns is None or now_ns - self._last_diag_ns >= self._diag_period_ns
        if not (due or out.changed or news):
            return None
        self._last_diag_ns = now_ns
        statuses = [safety_status(out), *(extra or [])]
        return partial(diagnostics_msg, self.typestore, now_ns if stamp_ns is None else stamp_ns, statuses)
