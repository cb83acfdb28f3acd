"""Pipeline: the onboard chain on a bag's clock, for replay, the simulator's bundle driver and the benchmarks.

    DriveStage (drive_node)  --DriveFrame as CDR bytes-->  SafetyStage (safety_node)

The very two stages the nodes run, split where the processes split: each frame crosses as the
bytes drive_node publishes on `command_raw` and safety_node decodes, so replay judges exactly what
the car's safety process receives. What a node gets from its executor comes from the bag here:
`now` is the receive stamp of the message being processed (what /clock says when a node replays
the bag with use_sim_time); before each message the safety watchdog looks at the clock (the safety
node's timer) and the drive stage's poll tick runs when due. Outputs depend only on the input.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from roadloop_core.bag import RawMessage
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.registry import TopicRegistry, load_registry
from roadloop_vehicle.drive import DriveCore, DriveStage
from roadloop_vehicle.model_manager.manager import ModelManager
from roadloop_vehicle.output_messages import EGO_FRAME, Emit
from roadloop_vehicle.params import VehicleParams
from roadloop_vehicle.safety.core import SafetyCore
from roadloop_vehicle.safety.stage import SafetyStage
from roadloop_vehicle.safety.supervisor import State, observed_roles

__all__ = ["EGO_FRAME", "PRODUCED_ROLES", "FrameReport", "OutMessage", "Pipeline", "load_observation_spec"]

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
    Outputs include `command_raw` (the frames between the stages), which a replay does not record.
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
        self._poll_ns = int(self.params.drive.model_manager.poll_period_s * 1e9)
        self.reset()

    def reset(self) -> None:
        """A fresh episode: new synchronizer, controller and supervisor state; the loaded model stays."""
        self.drive = DriveCore(self.params.drive, self.registry, self.observation, self.drive.manager)
        self.drive_stage = DriveStage(self.drive)
        s = self.params.safety
        # the model's inputs are monitored: the observation spec is the loaded bundle's (the manager refuses others)
        self.safety = SafetyCore(
            s.safety, s.vehicle_limits, self.registry, s.diagnostics_period_s,
            observed_roles=observed_roles(self.observation),
        )  # fmt: skip
        self.safety_stage = SafetyStage(self.safety, self.registry)
        self._watched = set(self.safety_stage.watched_roles)
        self._next_poll_ns: int | None = None
        self.reports: list[FrameReport] = []

    @property
    def manager(self) -> ModelManager:
        return self.drive.manager

    @property
    def last_seen(self) -> dict[str, int | None]:
        return self.safety_stage.last_seen

    def role_of(self, topic: str) -> str | None:
        return self._roles.get(topic)

    def step(self, raw: RawMessage) -> list[OutMessage]:
        role = self._roles.get(raw.topic)
        if role is None or role in PRODUCED_ROLES:
            return []
        return self.step_role(role, raw.data, raw.timestamp_ns)

    def step_role(self, role: str, data: bytes | memoryview, now_ns: int) -> list[OutMessage]:
        out = self.watchdog(now_ns)  # the safety node's timer runs before a message that arrives later
        if self._next_poll_ns is None:
            self._next_poll_ns = now_ns + self._poll_ns
        elif now_ns >= self._next_poll_ns:  # the drive node's model poll tick
            self._next_poll_ns += self._poll_ns * (1 + (now_ns - self._next_poll_ns) // self._poll_ns)
            out.extend(self._out(e, now_ns) for e in self.drive_stage.tick(now_ns))
        if role in self._watched:
            self.safety_stage.seen(role, now_ns)
        for emit in self.drive_stage.step(role, data, now_ns):
            out.append(self._out(emit, now_ns))
            if emit.role == "command_raw":
                out.extend(self._judge(emit, now_ns))
        return out

    def watchdog(self, now_ns: int) -> list[OutMessage]:
        t0 = time.perf_counter()
        emits = self.safety_stage.tick(now_ns)
        safe = self.safety_stage.last
        if not emits or safe is None:
            return []
        at = self.safety.decided_at_ns
        assert at is not None
        timings = {"safety": (time.perf_counter() - t0) * 1e3}
        self.reports.append(FrameReport("watchdog", at, at, None, safe.state, safe.faults, timings))
        return [self._out(e, now_ns) for e in emits]

    def _judge(self, frame_emit: Emit, now_ns: int) -> list[OutMessage]:
        """The safety stage on the frame's bytes, exactly as safety_node receives them."""
        t0 = time.perf_counter()
        data = self.typestore.serialize_cdr(frame_emit.msg, self.registry["command_raw"].type)
        emits = self.safety_stage.on_frame(data, now_ns)
        safe, frame = self.safety_stage.last, self.safety_stage.frame
        assert safe is not None and frame is not None
        drive = next((f for f in self.drive_stage.frames if f.stamp_ns == frame.stamp_ns), None)
        timings = {**(drive.timings_ms if drive is not None else {}), "safety": (time.perf_counter() - t0) * 1e3}
        self.reports.append(FrameReport("frame", frame.stamp_ns, now_ns, frame.model, safe.state, safe.faults, timings))
        return [self._out(e, now_ns) for e in emits]

    def _out(self, emit: Emit, now_ns: int) -> OutMessage:
        spec = self.registry[emit.role]
        return OutMessage(emit.role, spec.name, spec.type, now_ns, emit.msg)
