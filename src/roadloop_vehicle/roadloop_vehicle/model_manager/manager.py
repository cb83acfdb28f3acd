"""ModelManager: which model serves the next frame.

Loading (signature, hashes, observation spec, ONNX session, warm-up) happens in
`load`/`offer`, outside the frame path (the drive node calls it from a worker
thread; replay calls it before the first frame). A loaded model waits in a
pending slot; `begin_frame` swaps it in, so a frame is always served start to
finish by the one model `begin_frame` returned. `report` watches that model's
outputs and rolls back to the previous one on NaN or on X over-budget frames in
a row; the failed version is remembered and not loaded again.

`MODELS/current` (a symlink the bridge switches atomically) is followed by
`poll_current`; a bundle that is refused leaves the running model in place.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from roadloop_core.bundle import Manifest, check_observation_compatible, load_public_key, verify_bundle
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.errors import RoadloopError
from roadloop_core.param_schema import Param, check_fields
from roadloop_vehicle.errors import ModelError
from roadloop_vehicle.runtime.base import RuntimeConfig
from roadloop_vehicle.runtime.policy_runtime import PolicyRuntime
from roadloop_vehicle.runtime.spec import ModelOutputs, PolicySpec

__all__ = ["LoadedModel", "ModelEvent", "ModelManager", "ModelManagerConfig"]


@dataclass(frozen=True)
class ModelManagerConfig:
    models_dir: Annotated[str, Param("holds versions/<name>-v<version>/ and the `current` symlink the bridge switches")]
    latency_budget_ms: Annotated[
        float, Param("a frame's inference over this counts a strike", unit="ms", range=(0.1, 10000.0))
    ]
    latency_strikes: Annotated[
        int, Param("over-budget frames in a row that roll back to the previous model", unit="frames", range=(1, 1000))
    ]
    poll_period_s: Annotated[float, Param("how often `current` is checked", unit="s", range=(0.01, 3600.0))]

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    manifest: Manifest
    runtime: PolicyRuntime

    @property
    def label(self) -> str:
        return f"{self.manifest.name}-v{self.manifest.version}"


@dataclass(frozen=True)
class ModelEvent:
    kind: str  # loaded | activated | refused | rolled_back
    label: str
    reason: str = ""


class ModelManager:
    def __init__(
        self,
        config: ModelManagerConfig,
        runtime_config: RuntimeConfig,
        observation: ObservationSpec,
        public_key: Ed25519PublicKey | Path,
        *,
        enforce_latency: bool = True,
    ) -> None:
        self.config = config
        self.runtime_config = runtime_config
        self.observation = observation
        self.public_key = load_public_key(public_key) if isinstance(public_key, Path) else public_key
        # Replay turns this off: a rollback that depends on wall-clock time would make it non-deterministic.
        self.enforce_latency = enforce_latency
        self.active: LoadedModel | None = None
        self.previous: LoadedModel | None = None
        self._pending: LoadedModel | None = None
        self._lock = threading.Lock()
        self._strikes = 0
        self._rejected: set[Path] = set()
        self._watched: Path | None = None
        self.events: list[ModelEvent] = []

    # -- loading (outside the frame path) -------------------------------------------------
    def load(self, bundle_dir: Path) -> LoadedModel:
        """Verify and load a bundle; ModelError/BundleError names the reason it is refused."""
        manifest = verify_bundle(bundle_dir, self.public_key)
        check_observation_compatible(manifest, self.observation)
        # the model's tensors against the (now known to be the vehicle's) observation spec: image size, horizon
        spec = PolicySpec.from_manifest(manifest, f"{bundle_dir}/manifest.json")
        runtime = PolicyRuntime(bundle_dir / "policy.onnx", spec, self.runtime_config)
        warm = runtime.warmup(1)
        if warm is not None and not warm.finite:
            raise ModelError(f"{bundle_dir}: model outputs NaN/inf on the warm-up input")
        return LoadedModel(bundle_dir, manifest, runtime)

    def offer(self, bundle_dir: Path) -> bool:
        """Load `bundle_dir` and queue it for the next frame; on refusal keep the running model."""
        bundle_dir = Path(bundle_dir)
        try:
            model = self.load(bundle_dir)
        except RoadloopError as err:
            self._rejected.add(bundle_dir.resolve())
            self._event("refused", bundle_dir.name, str(err))
            return False
        with self._lock:
            self._pending = model
        self._event("loaded", model.label)
        return True

    def poll_current(self) -> bool:
        """Offer the bundle `MODELS/current` points at, if it changed. True when one was queued."""
        link = Path(os.path.expanduser(self.config.models_dir)) / "current"
        try:
            target = link.resolve(strict=True)
        except (FileNotFoundError, RuntimeError):
            return False
        if target == self._watched:
            return False
        self._watched = target
        if target in self._rejected:
            return False
        return self.offer(target)

    # -- the frame path ------------------------------------------------------------------
    def begin_frame(self) -> LoadedModel | None:
        """The model that serves this whole frame (a pending one is swapped in here, between frames)."""
        with self._lock:
            pending, self._pending = self._pending, None
        if pending is not None:
            self.previous, self.active = self.active, pending
            self._strikes = 0
            self._event("activated", pending.label)
        return self.active

    def report(self, model: LoadedModel, out: ModelOutputs) -> None:
        """After a frame: roll back a model that produced NaN or kept missing its latency budget."""
        if model is not self.active:
            return
        reason = ""
        if not out.finite:
            reason = "produced NaN/inf"
        elif self.enforce_latency:
            self._strikes = self._strikes + 1 if out.inference_ms > self.config.latency_budget_ms else 0
            if self._strikes >= self.config.latency_strikes:
                reason = f"over its {self.config.latency_budget_ms:g} ms budget {self._strikes} frames in a row"
        if reason and self.previous is not None:
            self._rejected.add(model.path.resolve())
            self._event("rolled_back", model.label, f"{reason}; back to {self.previous.label}")
            self.active, self.previous = self.previous, None
            self._strikes = 0

    def drain_events(self) -> list[ModelEvent]:
        with self._lock:
            events, self.events = self.events, []
        return events

    def _event(self, kind: str, label: str, reason: str = "") -> None:
        with self._lock:
            self.events.append(ModelEvent(kind, label, reason))
