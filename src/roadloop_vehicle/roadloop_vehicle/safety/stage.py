"""SafetyStage: the safety half of the onboard chain -- what safety_node runs, and replay after the drive stage.

Inputs: the monitored topics' arrivals (`seen`), the drive stage's frames as the bytes that cross
between the two processes (`on_frame`), and the watchdog's clock (`tick`). Outputs: the gated
`/control/command` and the supervisor's `/diagnostics`. Times: `now_ns` is the staleness clock
(monotonic on the car, the bag's clock in a replay or under /clock); `offset_ns` is the message
stamps' clock (the node clock) minus it, so what is published is stamped in node-clock time.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from roadloop_core.registry import TopicRegistry
from roadloop_vehicle.control.controller import Command
from roadloop_vehicle.frame import DriveFrame, check_frame_role, decode_frame, encode_frame
from roadloop_vehicle.output_messages import EGO_FRAME, Emit, command_msg, diagnostics_msg
from roadloop_vehicle.safety.core import SafetyCore, safety_status
from roadloop_vehicle.safety.supervisor import SafetyOutput, State

__all__ = ["SafetyStage"]


class SafetyStage:
    def __init__(self, core: SafetyCore, registry: TopicRegistry) -> None:
        check_frame_role(registry)
        self.core = core
        self.registry = registry
        self.typestore = core.typestore
        self.last_seen: dict[str, int | None] = {}
        self.model_available = True  # as the latest frame said (unknown before one: only staleness then)
        self.last: SafetyOutput | None = None  # the latest decision
        self.frame: DriveFrame | None = None  # the frame it judged (None: a watchdog decision)
        self._warm_up()

    def _warm_up(self) -> None:
        """Decode a frame and serialize a command and a status now: rosbags generates a type's (de)serializer
        at its first use, which would otherwise delay the first judged frame by tens of milliseconds."""
        reg, store = self.registry, self.typestore
        frame = DriveFrame(0, "warm-up", True, Command(0.0, 0.0, 0.0), 0.0, np.zeros((1, 2), np.float32))
        self.decode(store.serialize_cdr(encode_frame(store, frame), reg["command_raw"].type))
        store.serialize_cdr(command_msg(store, 0, Command(0.0, 0.0, 0.0), EGO_FRAME), reg["command"].type)
        idle = SafetyOutput(Command(0.0, 0.0, 0.0), State.INIT, (), "", False)
        store.serialize_cdr(diagnostics_msg(store, 0, [safety_status(idle)]), reg["diagnostics"].type)

    @property
    def watched_roles(self) -> list[str]:
        """The topics whose arrivals it watches itself (command_raw's are the frames)."""
        return [r for r in self.core.supervisor.monitored_roles if r != "command_raw"]

    def seen(self, role: str, now_ns: int) -> None:
        self.last_seen[role] = now_ns

    def decode(self, data: bytes | memoryview) -> DriveFrame:
        spec = self.registry["command_raw"]
        msg: Any = self.typestore.deserialize_cdr(data, spec.type)
        return decode_frame(msg, spec.name)

    def on_frame(self, data: bytes | memoryview, now_ns: int, offset_ns: int = 0) -> list[Emit]:
        """Judge one drive frame (its CDR bytes) at its stamp; InterfaceError when the bytes are no drive frame."""
        frame = self.decode(data)
        self.model_available = frame.model_available
        t = self.core.frame_time(frame.stamp_ns, now_ns, -offset_ns)
        out = self.core.on_command(
            t, self.last_seen, frame.command, frame.waypoints, frame.target_speed, frame.model_available
        )
        self.last, self.frame = out, frame
        return self._emit(out, t, frame.stamp_ns)

    def tick(self, now_ns: int, offset_ns: int = 0) -> list[Emit]:
        """The watchdog's look at the clock: a stop command (and diagnostics) when a new slot finds commands overdue."""
        out = self.core.tick(now_ns, self.last_seen, self.model_available)
        if out is None:
            return []
        assert self.core.decided_at_ns is not None
        at = self.core.decided_at_ns
        self.last, self.frame = out, None
        return self._emit(out, at, at + offset_ns)

    def _emit(self, out: SafetyOutput, t_ns: int, stamp_ns: int) -> list[Emit]:
        emits = [Emit("command", command_msg(self.typestore, stamp_ns, out.command, EGO_FRAME))]
        diag = self.core.diagnostics(t_ns, out, stamp_ns=stamp_ns)
        if diag is not None:
            emits.append(Emit.later("diagnostics", diag))
        return emits
