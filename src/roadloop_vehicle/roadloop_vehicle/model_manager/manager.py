"""ModelManager: which model serves the next frame.

Loading (`loader.load_model`: regular files read once, signature, hashes, observation spec,
tensor contract, ONNX session from the verified bytes, warm-up) happens in `load`/`offer`,
outside the frame path (the drive node calls it from a worker thread; replay calls it before
the first frame). A loaded model waits in a pending slot; `begin_frame` swaps it in, so a frame
is always served start to finish by the one model `begin_frame` returned. `report` watches that
model's outputs and rolls back to the previous one on NaN or on X over-budget frames in a row;
the failed version is remembered and not loaded again.

`MODELS/current` (a symlink the bridge switches atomically) is followed by `poll_current`; a
bundle that is refused leaves the running model in place. A node with no model yet (it just
restarted) whose `current` cannot be loaded falls back to the newest version under
`MODELS/versions/` that loads, and says so (`fell_back`). Any exception while loading is a
refusal with its reason, never the end of the loader.
"""

from __future__ import annotations

import logging
import os
import re
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from roadloop_core.bundle import load_public_key
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.errors import RoadloopError
from roadloop_core.param_schema import Param, check_fields
from roadloop_vehicle.model_manager.loader import LoadedModel, load_model
from roadloop_vehicle.runtime.base import RuntimeConfig
from roadloop_vehicle.runtime.spec import ModelOutputs

__all__ = ["LoadedModel", "ModelEvent", "ModelManager", "ModelManagerConfig", "versions_newest_first"]

log = logging.getLogger("roadloop.model")
_VERSION = re.compile(r"-v(\d+)$")


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
class ModelEvent:
    kind: str  # loaded | activated | refused | rolled_back | fell_back
    label: str
    reason: str = ""


def versions_newest_first(models_dir: Path) -> list[Path]:
    """MODELS/versions/<name>-v<N>/ folders, highest N first (then by name): the fallback order."""
    folders = []
    try:
        with os.scandir(models_dir / "versions") as it:
            for entry in it:
                m = _VERSION.search(entry.name)
                if m and entry.is_dir(follow_symlinks=False):
                    folders.append((-int(m.group(1)), entry.name, Path(entry.path)))
    except OSError:
        return []
    return [p for *_, p in sorted(folders)]


def _reason(err: BaseException) -> str:
    """One line: a RoadloopError's own message, anything else with its type (a bug or an OS fault)."""
    text = str(err).splitlines()[0] if str(err) else ""
    return text if isinstance(err, RoadloopError) else f"{type(err).__name__}: {text}"


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
        """Verify and load a bundle (`loader.load_model`); ModelError/BundleError names the reason it is refused."""
        return load_model(bundle_dir, self.public_key, self.observation, self.runtime_config)

    def offer(self, bundle_dir: Path) -> bool:
        """Load `bundle_dir` and queue it for the next frame; on refusal (any exception) keep the running model."""
        bundle_dir = Path(bundle_dir)
        try:
            model = self.load(bundle_dir)
        except Exception as err:  # a refusal whatever went wrong: the loader must outlive any bundle
            if not isinstance(err, RoadloopError):
                log.exception("loading %s failed", bundle_dir)
            self._reject(bundle_dir)
            self._event("refused", bundle_dir.name, _reason(err))
            return False
        with self._lock:
            self._pending = model
        self._event("loaded", model.label)
        return True

    def _reject(self, bundle_dir: Path) -> None:
        try:
            self._rejected.add(bundle_dir.resolve())
        except (OSError, RuntimeError):
            self._rejected.add(bundle_dir)

    def poll_current(self) -> bool:
        """Offer the bundle `MODELS/current` points at, if it changed. True when one was queued. Never raises:
        a fault is a `refused` event (the drive node's loader thread calls this forever)."""
        try:
            return self._poll_current()
        except Exception as err:
            log.exception("watching %s/current failed", self.config.models_dir)
            self._event("refused", "current", _reason(err))
            return False

    def _poll_current(self) -> bool:
        models = Path(os.path.expanduser(self.config.models_dir))
        try:
            target = (models / "current").resolve(strict=True)
        except (OSError, RuntimeError):  # not there yet, a dangling or looping link
            return False
        if target == self._watched:
            return False
        self._watched = target
        if target not in self._rejected and self.offer(target):
            return True
        if self.active is None and self._pending is None:  # nothing to drive on: the last good version
            return self._fall_back(models, target)
        return False

    def _fall_back(self, models: Path, bad: Path) -> bool:
        for folder in versions_newest_first(models):
            resolved = folder.resolve()
            if resolved == bad or resolved in self._rejected:
                continue
            if self.offer(folder):
                self._event("fell_back", folder.name, f"current ({bad.name}) cannot be loaded")
                return True
        return False

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
