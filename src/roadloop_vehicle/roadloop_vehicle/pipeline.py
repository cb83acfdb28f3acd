"""Pipeline: the whole onboard chain in one object, for replay and the simulator's bundle driver.

    ObservationAssembler -> PolicyRuntime -> Controller -> SafetySupervisor

On the car the same cores run split over two processes (DriveCore in drive_node,
SafetyCore in safety_node); here they run inline on a simulated clock: `now` is the
receive stamp of the message being processed, so outputs depend only on the input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roadloop_core.bag import RawMessage
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.registry import TopicRegistry, load_registry
from roadloop_vehicle.diagnostics import model_status
from roadloop_vehicle.drive import DriveCore, DriveOutput
from roadloop_vehicle.model_manager.manager import ModelManager
from roadloop_vehicle.output_messages import command_msg, trajectory_msg
from roadloop_vehicle.params import VehicleParams
from roadloop_vehicle.safety.core import SafetyCore
from roadloop_vehicle.safety.supervisor import SafetyOutput, State, observed_roles

__all__ = ["EGO_FRAME", "PRODUCED_ROLES", "FrameReport", "OutMessage", "Pipeline", "load_observation_spec"]

EGO_FRAME = "base_link"
# Roles the pipeline produces: never taken as input (a recorded drive holds them too).
PRODUCED_ROLES = ("trajectory", "command_raw", "command", "diagnostics")


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
    timings_ms: dict[str, float] = field(default_factory=dict)  # measured: never written to a bag


def load_observation_spec(params: VehicleParams) -> ObservationSpec:
    return ObservationSpec.from_config(params.path(params.drive.observation_config))


class Pipeline:
    """`step(RawMessage) -> list[OutMessage]`; `reports` collects one FrameReport per decision.

    The registry and the observation spec default to the files `params` names (its
    `topics_config` and `observation_config`); the simulator passes its own registry.
    """

    def __init__(
        self,
        params: VehicleParams,
        bundle_dir: Path | None = None,
        *,
        registry: TopicRegistry | None = None,
        observation: ObservationSpec | None = None,
        public_key: Path | None = None,
        deterministic: bool = True,
    ) -> None:
        self.params = params
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
        self.typestore = self.drive.typestore
        self._roles = {spec.name: role for role, spec in self.registry.topics.items()}
        self.reset()

    def reset(self) -> None:
        """A fresh episode: new synchronizer, controller and supervisor state; the loaded model stays."""
        self.drive = DriveCore(self.params.drive, self.registry, self.observation, self.drive.manager)
        s = self.params.safety
        # the model's inputs are monitored: the observation spec is the loaded bundle's (the manager refuses others)
        self.safety = SafetyCore(
            s.safety, s.vehicle_limits, self.registry, s.diagnostics_period_s,
            observed_roles=observed_roles(self.observation),
        )  # fmt: skip
        self.last_seen: dict[str, int | None] = {}
        self.reports: list[FrameReport] = []

    @property
    def manager(self) -> ModelManager:
        return self.drive.manager

    def role_of(self, topic: str) -> str | None:
        return self._roles.get(topic)

    def step(self, raw: RawMessage) -> list[OutMessage]:
        role = self._roles.get(raw.topic)
        if role is None or role in PRODUCED_ROLES:
            return []
        return self.step_role(role, raw.data, raw.timestamp_ns)

    def step_role(self, role: str, data: bytes | memoryview, now_ns: int) -> list[OutMessage]:
        self.last_seen[role] = now_ns
        out: list[OutMessage] = []
        for frame in self.drive.step(role, data):
            out.extend(self.finish(frame, now_ns))
        if not out:
            out.extend(self.watchdog(now_ns))
        return out

    def watchdog(self, now_ns: int) -> list[OutMessage]:
        t0 = time.perf_counter()
        safe = self.safety.tick(now_ns, self.last_seen, model_available=self.manager.active is not None)
        if safe is None:
            return []
        timings = {"safety": (time.perf_counter() - t0) * 1e3}
        self.reports.append(FrameReport("watchdog", now_ns, now_ns, None, safe.state, safe.faults, timings))
        return self._outputs(now_ns, now_ns, None, safe, None)

    def finish(self, frame: DriveOutput, now_ns: int) -> list[OutMessage]:
        """Safety and the outgoing messages of one frame (`now_ns`: the simulated clock)."""
        t0 = time.perf_counter()
        out = frame.outputs
        safe = self.safety.on_command(
            now_ns,
            self.last_seen,
            frame.command,
            waypoints=out.waypoints if out is not None else None,
            target_speed=out.target_speed if out is not None else None,
            model_available=frame.model is not None,
        )
        timings = {**frame.timings_ms, "safety": (time.perf_counter() - t0) * 1e3}
        self.reports.append(FrameReport("frame", frame.stamp_ns, now_ns, frame.model, safe.state, safe.faults, timings))
        return self._outputs(frame.stamp_ns, now_ns, frame, safe, frame.model)

    def _outputs(
        self, stamp_ns: int, now_ns: int, frame: DriveOutput | None, safe: SafetyOutput, model: str | None
    ) -> list[OutMessage]:
        reg, store = self.registry, self.typestore
        msgs: list[OutMessage] = []
        if frame is not None and frame.outputs is not None:
            traj = trajectory_msg(store, stamp_ns, frame.outputs.waypoints, EGO_FRAME)
            msgs.append(OutMessage("trajectory", reg["trajectory"].name, reg["trajectory"].type, now_ns, traj))
        cmd = command_msg(store, stamp_ns, safe.command, EGO_FRAME)
        msgs.append(OutMessage("command", reg["command"].name, reg["command"].type, now_ns, cmd))
        events = self.manager.drain_events()
        active = self.manager.active
        label = model or (active.label if active is not None else None)
        diag = self.safety.diagnostics(now_ns, safe, [model_status(label, events)], news=bool(events))
        if diag is not None:
            msgs.append(OutMessage("diagnostics", reg["diagnostics"].name, reg["diagnostics"].type, now_ns, diag))
        return msgs
