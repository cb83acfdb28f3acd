"""DriveCore: ObservationAssembler -> ModelManager/PolicyRuntime -> Controller (what drive_node runs)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.contract.tensors import EGO_STATE_ARRAY
from roadloop_core.features import Features
from roadloop_core.registry import TopicRegistry
from roadloop_core.typesys import typestore_for
from roadloop_vehicle.control.controller import Command, Controller, ControllerInput
from roadloop_vehicle.model_manager.manager import ModelManager
from roadloop_vehicle.observation.assembler import ObservationAssembler
from roadloop_vehicle.params import DriveParams, VehicleParams
from roadloop_vehicle.runtime.spec import ModelOutputs

__all__ = ["DriveCore", "DriveOutput"]

_SPEED = EGO_STATE_ARRAY.field("speed")


@dataclass(frozen=True)
class DriveOutput:
    stamp_ns: int  # the frame's sensor stamp
    features: Features
    model: str | None  # label of the model that served the frame (None: no model loaded)
    outputs: ModelOutputs | None
    command: Command | None
    timings_ms: dict[str, float] = field(default_factory=dict)  # measured; never goes into a bag


class DriveCore:
    """`step(role, cdr_bytes) -> list[DriveOutput]`; the model comes from `manager`."""

    def __init__(
        self,
        params: DriveParams,
        registry: TopicRegistry,
        observation: ObservationSpec,
        manager: ModelManager,
    ) -> None:
        self.params = params
        self.registry = registry
        self.observation = observation
        self.typestore = typestore_for(registry.typestore)
        self.assembler = ObservationAssembler(observation, registry, self.typestore)
        self.controller = Controller(params.controller, params.vehicle_limits)
        self.manager = manager
        self._last_stamp: int | None = None

    @classmethod
    def from_params(
        cls,
        params: VehicleParams,
        registry: TopicRegistry,
        observation: ObservationSpec,
        *,
        bundle_dir: Path | None,
        public_key: Path | None = None,
        deterministic: bool = False,
    ) -> DriveCore:
        d = params.drive
        manager = ModelManager(
            d.model_manager,
            d.runtime,
            observation,
            public_key or params.path(d.public_key),
            enforce_latency=not deterministic,
        )
        if bundle_dir is not None:
            manager.offer(bundle_dir)
        return cls(d, registry, observation, manager)

    def step(self, role: str, data: bytes | memoryview) -> list[DriveOutput]:
        t0 = time.perf_counter()
        frames = self.assembler.step(role, data)
        sync_ms = (time.perf_counter() - t0) * 1e3
        return [self.frame(f, sync_ms) for f in frames]

    def frame(self, feats: Features, sync_ms: float = 0.0) -> DriveOutput:
        model = self.manager.begin_frame()  # one model serves this whole frame
        dt = 0.1 if self._last_stamp is None else max(1e-3, (feats.stamp_ns - self._last_stamp) / 1e9)
        self._last_stamp = feats.stamp_ns
        if model is None:
            return DriveOutput(feats.stamp_ns, feats, None, None, None, {"sync": sync_ms})
        t1 = time.perf_counter()
        out = model.runtime.step(feats.values)
        t2 = time.perf_counter()
        speed = float(feats[EGO_STATE_ARRAY.name][_SPEED])
        cmd = self.controller.step(ControllerInput(out.waypoints, out.target_speed, speed, dt))
        t3 = time.perf_counter()
        self.manager.report(model, out)
        timings = {
            "sync": sync_ms,
            "policy": (t2 - t1) * 1e3,
            "inference": out.inference_ms,
            "control": (t3 - t2) * 1e3,
        }
        return DriveOutput(feats.stamp_ns, feats, model.label, out, cmd, timings)
