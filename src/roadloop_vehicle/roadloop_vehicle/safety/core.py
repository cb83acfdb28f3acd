"""SafetyCore: what safety_node runs (and the Pipeline inline): the supervisor, its watchdog and diagnostics.

Commands are judged as they arrive (`on_command`). A timer calls `tick`: when no
command came for longer than command_raw's staleness (or none came since `start`,
which safety_node calls when it starts), the supervisor runs anyway with no command, so a policy that
stops or never starts publishing (dead node, stalled camera, no model) still ends in
a controlled stop with its reason. Every `now_ns` here is the clock staleness is
measured on: monotonic on the car (safety_node), the bag's clock in a replay.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
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

__all__ = ["SafetyCore", "safety_status"]


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
        self._last_diag_ns: int | None = None
        self._last_command_ns: int | None = None
        self._last_tick_ns: int | None = None
        self._watch_since_ns: int | None = None
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
        self._last_tick_ns = None
        seen = {**last_seen, "command_raw": now_ns}
        return self._step(SafetyInput(now_ns, seen, command, waypoints, target_speed, model_available))

    def start(self, now_ns: int) -> None:
        """Watch from `now_ns` on: until a first command arrives, every tick commands a stop.

        safety_node calls this when it starts, so the actuators get stop commands and /diagnostics
        at the watchdog's rate even when drive_node never starts. Replay has no process start (a bag
        begins wherever the recorder began): its watchdog starts with the first command.
        """
        self._watch_since_ns = now_ns

    def tick(
        self, now_ns: int, last_seen: Mapping[str, int | None], model_available: bool = True, *, slack_ns: int = 0
    ) -> SafetyOutput | None:
        """The watchdog: a decision without a command, once commands are overdue (at most every tick period).

        `slack_ns`: how much earlier than a full period after the last tick a tick still counts. A
        timer at the tick period passes half a period, so its jitter cannot drop every other tick;
        replay, which ticks on incoming messages, passes 0.
        """
        last = self._last_command_ns
        if last is None:
            if self._watch_since_ns is None:
                return None
        elif now_ns - last <= self.watchdog_after_ns:
            return None
        period_ns = int(self.tick_period_s * 1e9)
        if self._last_tick_ns is not None and now_ns - self._last_tick_ns < period_ns - slack_ns:
            return None
        self._last_tick_ns = now_ns
        seen = {**last_seen, "command_raw": last}  # None before the first command: stale
        return self._step(SafetyInput(now_ns, seen, None, model_available=model_available))

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
    ) -> Any | None:
        """A DiagnosticArray (safety status + `extra`) when due: each period, on a state change, or on `news`.

        `now_ns` is the clock the period is measured on; `stamp_ns` (default `now_ns`) the message's stamp.
        """
        due = self._last_diag_ns is None or now_ns - self._last_diag_ns >= self._diag_period_ns
        if not (due or out.changed or news):
            return None
        self._last_diag_ns = now_ns
        return diagnostics_msg(self.typestore, now_ns if stamp_ns is None else stamp_ns,
                               [safety_status(out), *(extra or [])])  # fmt: skip
