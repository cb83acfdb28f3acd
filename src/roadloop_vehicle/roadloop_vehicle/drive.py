"""The drive half of the onboard chain: ObservationAssembler -> ModelManager/PolicyRuntime -> Controller.

`DriveCore` computes a frame; `DriveStage` is what drive_node runs and replay runs before the safety
stage: per observation frame the trajectory and one `DriveFrame` (the `command_raw` role) -- with or
without a model, so the safety stage learns at once that none serves -- and the model's status on
/diagnostics at news and on every poll tick.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import numpy as np

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.contract.tensors import EGO_STATE_ARRAY
from roadloop_core.features import Features
from roadloop_core.registry import TopicRegistry
from roadloop_core.typesys import typestore_for
from roadloop_vehicle.control.controller import Command, Controller, ControllerInput
from roadloop_vehicle.diagnostics import model_status
from roadloop_vehicle.frame import DriveFrame, check_frame_role, encode_frame
from roadloop_vehicle.model_manager.manager import ModelEvent, ModelManager
from roadloop_vehicle.observation.assembler import ObservationAssembler
from roadloop_vehicle.output_messages import EGO_FRAME, Emit, diagnostics_msg, trajectory_msg
from roadloop_vehicle.params import DriveParams, VehicleParams
from roadloop_vehicle.runtime.spec import ModelOutputs

__all__ = ["DriveCore", "DriveOutput", "DriveStage"]

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
        self._swaps: list[tuple[int, Path]] = []

    def swap_at(self, stamp_ns: int, bundle_dir: Path) -> None:
        """Offer `bundle_dir` to the model manager before the first frame stamped at or after `stamp_ns`.

        What the loader thread does on the car when `current` changes, placed on the bag's clock: a
        replay reproduces a recorded model swap at the frame where the car made it.
        """
        self._swaps.append((stamp_ns, bundle_dir))
        self._swaps.sort(key=lambda s: s[0])

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
        while self._swaps and self._swaps[0][0] <= feats.stamp_ns:
            self.manager.offer(self._swaps.pop(0)[1])
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


class DriveStage:
    """`step(role, cdr_bytes, now_ns) -> [Emit]` per input message; `tick(now_ns)` on the model poll period."""

    def __init__(self, core: DriveCore) -> None:
        check_frame_role(core.registry)
        self.core = core
        self.typestore = core.typestore
        self.frames: list[DriveOutput] = []  # the frames of the latest step
        self.events: list[ModelEvent] = []  # the model events the latest step or tick reported
        self._warm_up()

    def _warm_up(self) -> None:
        """Serialize one of each output now: rosbags generates a type's serializer at its first use, which
        would otherwise delay the first frame by tens of milliseconds."""
        reg, store = self.core.registry, self.typestore
        wp = np.zeros((1, 2), np.float32)
        frame = DriveFrame(0, "warm-up", True, Command(0.0, 0.0, 0.0), 0.0, wp)
        store.serialize_cdr(encode_frame(store, frame), reg["command_raw"].type)
        store.serialize_cdr(trajectory_msg(store, 0, wp, EGO_FRAME), reg["trajectory"].type)
        store.serialize_cdr(diagnostics_msg(store, 0, [model_status(None, [])]), reg["diagnostics"].type)

    def step(self, role: str, data: bytes | memoryview, now_ns: int) -> list[Emit]:
        self.frames = self.core.step(role, data)
        emits: list[Emit] = []
        for out in self.frames:
            m = out.outputs
            if m is not None:
                path = partial(trajectory_msg, self.typestore, out.stamp_ns, m.waypoints, EGO_FRAME)
                emits.append(Emit.later("trajectory", path))
            frame = DriveFrame(
                stamp_ns=out.stamp_ns,
                model=out.model,
                model_available=out.model is not None,
                command=out.command,
                target_speed=m.target_speed if m is not None else None,
                waypoints=m.waypoints if m is not None else None,
            )
            emits.append(Emit("command_raw", encode_frame(self.typestore, frame)))
        return emits + self._model_news(now_ns, always=False)

    def tick(self, now_ns: int) -> list[Emit]:
        """The model status, news or not (the poll tick)."""
        return self._model_news(now_ns, always=True)

    def _model_news(self, now_ns: int, *, always: bool) -> list[Emit]:
        self.events = self.core.manager.drain_events()
        if not (self.events or always):
            return []
        active = self.core.manager.active
        status = model_status(active.label if active is not None else None, self.events)
        return [Emit("diagnostics", diagnostics_msg(self.typestore, now_ns, [status]))]
