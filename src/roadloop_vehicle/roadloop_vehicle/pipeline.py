"""Pipeline: the whole onboard chain in one object, for replay and the simulator's bundle driver.

    ObservationAssembler -> PolicyRuntime -> Controller -> SafetySupervisor

On the car the same cores run split over two processes (drive_node, safety_node);
here they run inline on a simulated clock: `now` is the receive stamp of the
message being processed, so outputs depend only on the input messages.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roadloop_core.bag import RawMessage
from roadloop_core.features import ObservationSpec
from roadloop_core.registry import TopicRegistry, load_registry
from roadloop_core.typesys import typestore_for
from roadloop_vehicle.drive import DriveCore, DriveOutput
from roadloop_vehicle.messages import LEVEL_ERROR, LEVEL_OK, LEVEL_WARN, command_msg, diagnostics_msg, trajectory_msg
from roadloop_vehicle.models.manager import ModelEvent
from roadloop_vehicle.params import VehicleParams, load_vehicle_params
from roadloop_vehicle.safety.supervisor import SafetyInput, SafetyOutput, SafetySupervisor, State

__all__ = ["FrameReport", "OutMessage", "Pipeline", "SafetyCore", "load_observation_spec"]

EGO_FRAME = "base_link"


@dataclass(frozen=True)
class OutMessage:
    role: str
    topic: str
    typename: str
    timestamp_ns: int
    msg: Any


@dataclass(frozen=True)
class FrameReport:
    """One safety decision: a policy frame, or a watchdog tick while no command arrives."""

    kind: str  # "frame" | "watchdog"
    stamp_ns: int
    now_ns: int
    model: str | None
    state: State
    faults: tuple[str, ...]
    timings_ms: dict[str, float] = field(default_factory=dict)


def load_observation_spec(params: VehicleParams) -> ObservationSpec:
    return ObservationSpec.from_config(params.path(params.drive.observation_config))


class SafetyCore:
    """SafetySupervisor plus its /diagnostics (on every state change, model event, and each period)."""

    def __init__(self, params: VehicleParams, registry: TopicRegistry) -> None:
        self.params = params.safety
        self.registry = registry
        self.supervisor = SafetySupervisor(params.safety.safety, registry)
        self._last_diag_ns: int | None = None
        self.fallback_entries = 0

    def step(self, inp: SafetyInput) -> SafetyOutput:
        out = self.supervisor.step(inp)
        if out.changed and out.state is State.FALLBACK:
            self.fallback_entries += 1
        return out

    def diagnostics(
        self, now_ns: int, out: SafetyOutput, model: str | None, events: list[ModelEvent], force: bool = False
    ) -> Any | None:
        period = int(self.params.diagnostics_period_s * 1e9)
        due = self._last_diag_ns is None or now_ns - self._last_diag_ns >= period
        if not (due or force or out.changed or events):
            return None
        self._last_diag_ns = now_ns
        level = {State.ACTIVE: LEVEL_OK, State.FALLBACK: LEVEL_ERROR}.get(out.state, LEVEL_WARN)
        statuses = [
            (
                level,
                "roadloop/safety",
                out.reason or out.state.value,
                {"state": out.state.value, "faults": ",".join(out.faults)},
            )
        ]
        model_values = {"active": model or ""}
        for i, ev in enumerate(events):
            model_values[f"event{i}"] = f"{ev.kind} {ev.label}: {ev.reason}".rstrip(": ")
        refused = any(ev.kind in ("refused", "rolled_back") for ev in events)
        statuses.append(
            (
                LEVEL_WARN if refused or model is None else LEVEL_OK,
                "roadloop/model",
                model or "no model loaded",
                model_values,
            )
        )
        return diagnostics_msg(typestore_for(self.registry.typestore), now_ns, statuses)


class Pipeline:
    """`step(RawMessage) -> list[OutMessage]`; `reports` collects one FrameReport per frame."""

    def __init__(
        self,
        params: VehicleParams | None = None,
        bundle_dir: Path | None = None,
        *,
        registry: TopicRegistry | None = None,
        observation: ObservationSpec | None = None,
        public_key: Path | None = None,
        deterministic: bool = True,
    ) -> None:
        self.params = params or load_vehicle_params()
        self.registry = registry or load_registry(self.params.path(self.params.drive.topics_config))
        self.observation = observation or load_observation_spec(self.params)
        self.drive = DriveCore.from_params(
            self.params,
            self.registry,
            self.observation,
            bundle_dir=bundle_dir,
            public_key=public_key,
            deterministic=deterministic,
        )
        self.safety = SafetyCore(self.params, self.registry)
        self.typestore = self.drive.typestore
        self._roles = {spec.name: role for role, spec in self.registry.topics.items()}
        self.last_seen: dict[str, int | None] = {}
        self.reports: list[FrameReport] = []
        # Like safety_node's timer: with no command for longer than command_raw's staleness, the
        # supervisor still runs at the command rate (a camera that stops also stops the frames).
        cmd_spec = self.registry["command_raw"]
        self._watchdog_after_ns = int(cmd_spec.stale_after_s(self.registry.stale_factor) * 1e9)
        self._tick_ns = int(1e9 / cmd_spec.rate_hz)
        self._last_command_ns: int | None = None
        self._last_tick_ns: int | None = None

    @property
    def manager(self) -> Any:
        return self.drive.manager

    def role_of(self, topic: str) -> str | None:
        return self._roles.get(topic)

    def step(self, raw: RawMessage) -> list[OutMessage]:
        role = self._roles.get(raw.topic)
        if role is None:
            return []
        self.last_seen[role] = raw.timestamp_ns
        out: list[OutMessage] = []
        for frame in self.drive.step(role, raw.data):
            out.extend(self.finish(frame, raw.timestamp_ns))
        if not out:
            out.extend(self.watchdog(raw.timestamp_ns))
        return out

    def watchdog(self, now_ns: int) -> list[OutMessage]:
        """A safety tick without a command, when commands stopped coming (stale inputs, no model)."""
        last = self._last_command_ns
        if last is None or now_ns - last <= self._watchdog_after_ns:
            return []
        if self._last_tick_ns is not None and now_ns - self._last_tick_ns < self._tick_ns:
            return []
        self._last_tick_ns = now_ns
        t0 = time.perf_counter()
        safe = self.safety.step(
            SafetyInput(
                now_ns=now_ns,
                last_seen_ns=self.last_seen,
                command=None,
                model_available=self.drive.manager.active is not None,
            )
        )
        timings = {"safety": (time.perf_counter() - t0) * 1e3}
        self.reports.append(FrameReport("watchdog", now_ns, now_ns, None, safe.state, safe.faults, timings))
        reg = self.registry
        cmd = command_msg(self.typestore, now_ns, safe.command, EGO_FRAME)
        msgs = [OutMessage("command", reg["command"].name, reg["command"].type, now_ns, cmd)]
        diag = self.safety.diagnostics(now_ns, safe, None, self.drive.manager.drain_events())
        if diag is not None:
            msgs.append(OutMessage("diagnostics", reg["diagnostics"].name, reg["diagnostics"].type, now_ns, diag))
        return msgs

    def finish(self, frame: DriveOutput, now_ns: int) -> list[OutMessage]:
        """Safety and the outgoing messages of one frame (`now_ns`: the simulated clock)."""
        t0 = time.perf_counter()
        self.last_seen["command_raw"] = self._last_command_ns = now_ns
        self._last_tick_ns = None
        outputs = frame.outputs
        inp = SafetyInput(
            now_ns=now_ns,
            last_seen_ns=self.last_seen,
            command=frame.command,
            waypoints=outputs.waypoints if outputs is not None else None,
            target_speed=outputs.target_speed if outputs is not None else None,
            model_available=frame.model is not None,
        )
        safe = self.safety.step(inp)
        safety_ms = (time.perf_counter() - t0) * 1e3
        reg, store = self.registry, self.typestore
        msgs: list[OutMessage] = []
        if outputs is not None:
            traj = trajectory_msg(store, frame.stamp_ns, outputs.waypoints, EGO_FRAME)
            msgs.append(OutMessage("trajectory", reg["trajectory"].name, reg["trajectory"].type, now_ns, traj))
        cmd = command_msg(store, frame.stamp_ns, safe.command, EGO_FRAME)
        msgs.append(OutMessage("command", reg["command"].name, reg["command"].type, now_ns, cmd))
        diag = self.safety.diagnostics(now_ns, safe, frame.model, self.drive.manager.drain_events())
        if diag is not None:
            msgs.append(OutMessage("diagnostics", reg["diagnostics"].name, reg["diagnostics"].type, now_ns, diag))
        timings = dict(frame.timings_ms)
        timings["safety"] = safety_ms
        self.reports.append(FrameReport("frame", frame.stamp_ns, now_ns, frame.model, safe.state, safe.faults, timings))
        return msgs
