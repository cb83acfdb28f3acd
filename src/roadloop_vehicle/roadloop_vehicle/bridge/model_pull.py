"""Model pull: a channel's new bundle is downloaded, checked as the drive node loads it, and only then made current.

    MODELS/staging/<bundle_id>/        download in progress (resumed with HTTP Range after a crash)
    MODELS/versions/<name>-v<version>/ checked bundles (the previous one stays for rollback)
    MODELS/current -> versions/...     switched atomically (new symlink + os.replace); the
                                       ModelManager follows it between two frames

Checks, in order: every file's size and sha256 against the release (the transfer), then
`model_manager.load_model` — the drive node's own load: regular files read once, Ed25519
signature, every sha256, observation spec, tensor contract, an onnxruntime (or TensorRT) session
from the verified bytes and a warm-up with finite outputs — and, when a golden bag is configured,
a replay with no fallback and no NaN. So `MODELS/current` only ever names a model the car loads.

Two kinds of refusal: a download whose bytes differ from the release (a corrupt transfer) is
retried, at most `max_attempts` times with exponential backoff (STATE/models.json `retry`); a
bundle whose intact bytes are refused (bad signature, unloadable model, wrong spec) is remembered
(`refused`) and never downloaded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from roadloop_core.bundle import MANIFEST_FILE, Manifest
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.contract.wire import SHA256_RE, check_name
from roadloop_core.errors import RoadloopError
from roadloop_core.fsio import atomic_write_json, fsync_dir, replace_symlink
from roadloop_core.hub_client import HubClient
from roadloop_vehicle.bridge.errors import BridgeError
from roadloop_vehicle.model_manager.loader import load_model
from roadloop_vehicle.params import VehicleParams

__all__ = ["ModelPuller", "PullResult", "RetryPolicy", "current_label", "switch_current"]


@dataclass(frozen=True)
class PullResult:
    action: str  # none | unchanged | installed | switched | retry (a corrupt download, retried later) | refused
    label: str = ""
    reason: str = ""


@dataclass(frozen=True)
class RetryPolicy:
    """How often a corrupt download is retried: `max_attempts` downloads, `base_s * 2**(n-1)` (<= `max_s`) apart."""

    max_attempts: int = 8
    base_s: float = 0.5
    max_s: float = 60.0

    def delay(self, attempt: int) -> float:
        return min(self.max_s, self.base_s * 2.0 ** min(attempt - 1, 30))


def current_label(models_dir: Path) -> str:
    link = models_dir / "current"
    return os.readlink(link).rsplit("/", 1)[-1] if link.is_symlink() else ""


def switch_current(models_dir: Path, version_dir: Path) -> None:
    """Point MODELS/current at `version_dir` atomically: a reader sees the old or the new target, never none."""
    replace_symlink(models_dir / "current", Path("versions") / version_dir.name)


def _manifest_sha(folder: Path) -> str:
    try:
        return hashlib.sha256((folder / MANIFEST_FILE).read_bytes()).hexdigest()
    except OSError:
        return ""


def _sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()


class ModelPuller:
    def __init__(
        self,
        client: HubClient,
        channel: str,
        models_dir: Path,
        state_dir: Path,
        public_key: Ed25519PublicKey,
        public_key_path: Path,
        observation: ObservationSpec,
        vehicle_params: VehicleParams,
        golden_bag: Path | None = None,
        retry: RetryPolicy | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.client, self.channel = client, channel
        self.retry, self.clock = retry or RetryPolicy(), clock
        self.models_dir = models_dir
        self.versions = models_dir / "versions"
        self.staging = models_dir / "staging"
        self.public_key, self.public_key_path = public_key, public_key_path
        self.observation = observation
        self.golden_bag = golden_bag
        self.vehicle_params = vehicle_params  # the drive node's params: the golden replay runs exactly them
        self.state_path = state_dir / "models.json"
        for d in (self.versions, self.staging):
            d.mkdir(parents=True, exist_ok=True)

    def _state(self) -> dict[str, Any]:
        try:
            data: dict[str, Any] = json.loads(self.state_path.read_text())
            return data
        except (OSError, ValueError):
            return {"refused": {}, "retry": {}}

    def _save_state(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.state_path, state, indent=2)

    def _refuse(self, bundle_id: str, label: str, reason: str) -> PullResult:
        """The bundle's intact bytes are refused: remembered, never downloaded again."""
        state = self._state()
        state.setdefault("refused", {})[bundle_id] = reason
        state.setdefault("retry", {}).pop(bundle_id, None)
        self._save_state(state)
        shutil.rmtree(self.staging / bundle_id, ignore_errors=True)
        return PullResult("refused", label, reason)

    def _transfer_fault(self, bundle_id: str, label: str, reason: str) -> PullResult:
        """A download differed from the release: try again later (backoff), refuse after `max_attempts`."""
        state = self._state()
        entry = state.setdefault("retry", {}).get(bundle_id, {})
        attempts = int(entry.get("attempts", 0)) + 1
        if attempts >= self.retry.max_attempts:
            return self._refuse(bundle_id, label, f"{attempts} downloads were corrupt, the last: {reason}")
        delay = self.retry.delay(attempts)
        state["retry"][bundle_id] = {"attempts": attempts, "after": self.clock() + delay, "reason": reason}
        self._save_state(state)
        return PullResult("retry", label, f"{reason} (download {attempts} of {self.retry.max_attempts}; "
                                          f"again in {delay:.1f} s)")  # fmt: skip

    def poll(self) -> PullResult:
        release = self.client.current(self.channel)
        if release is None:
            return PullResult("none", reason=f"channel {self.channel} has no release")
        bundle_id = str(release["bundle_id"])
        label = f"{release['name']}-v{release['version']}"
        if not SHA256_RE.match(bundle_id):
            raise BridgeError(f"hub sent a malformed bundle id {bundle_id!r}")
        try:
            check_name(label, "bundle label")
            files = {check_name(str(n), "bundle file"): int(s) for n, s in dict(release["files"]).items()}
            hashes = {str(n): str(h) for n, h in dict(release.get("sha256") or {}).items()}
        except (ValueError, TypeError) as err:
            return self._refuse(bundle_id, label, f"release {label}: {err}")
        hashes[MANIFEST_FILE] = bundle_id  # the bundle id is the manifest's sha256
        current = self.models_dir / "current"
        if current.is_symlink() and _manifest_sha(current) == bundle_id:
            return PullResult("unchanged", label)
        state = self._state()
        if bundle_id in state.get("refused", {}):
            return PullResult("refused", label, str(state["refused"][bundle_id]))
        waiting = state.get("retry", {}).get(bundle_id)
        if waiting and self.clock() < float(waiting.get("after", 0)):
            return PullResult("retry", label, f"{waiting.get('reason', '')} (waiting before download "
                                              f"{int(waiting.get('attempts', 0)) + 1})")  # fmt: skip
        installed = self.versions / label
        if installed.is_dir() and _manifest_sha(installed) == bundle_id:
            try:  # a rollback to a version kept on disk: checked again as the drive node will load it
                self._loadable(installed)
            except RoadloopError as err:
                return self._refuse(bundle_id, label, str(err))
            switch_current(self.models_dir, installed)
            return PullResult("switched", label)
        if installed.exists():
            return self._refuse(bundle_id, label, f"{installed}: another bundle already holds {label}")
        stage = self.staging / bundle_id
        stage.mkdir(exist_ok=True)
        for name, size in sorted(files.items()):
            self.client.download(bundle_id, name, stage / name, size)
        for name in sorted(files):
            expected = hashes.get(name)
            if expected is not None and _sha256_file(stage / name) != expected:
                (stage / name).unlink()  # the next attempt downloads it whole again
                return self._transfer_fault(bundle_id, label, f"{label}/{name}: downloaded bytes differ from the "
                                                              "release's sha256")  # fmt: skip
        try:
            manifest = self._check(stage, label)
        except RoadloopError as err:
            return self._refuse(bundle_id, label, str(err).replace(str(stage), label))
        fsync_dir(stage)
        os.rename(stage, installed)
        switch_current(self.models_dir, installed)
        state = self._state()
        if state.get("retry", {}).pop(bundle_id, None) is not None:
            self._save_state(state)
        return PullResult("installed", f"{manifest.name}-v{manifest.version}")

    def _loadable(self, folder: Path) -> Manifest:
        """The drive node's own load of the bundle (the session is dropped again): RoadloopError if it would refuse."""
        return load_model(folder, self.public_key, self.observation, self.vehicle_params.drive.runtime).manifest

    def _check(self, stage: Path, label: str) -> Manifest:
        manifest = self._loadable(stage)
        if f"{manifest.name}-v{manifest.version}" != label:
            raise BridgeError(f"{label}: manifest says {manifest.name} v{manifest.version}")
        if self.golden_bag is not None:
            self._golden_replay(stage, label)
        return manifest

    def _golden_replay(self, stage: Path, label: str) -> None:
        try:
            from roadloop_vehicle.replay import replay_bag
        except ImportError as err:  # configured but cannot run: refusing is the only safe answer
            raise BridgeError(f"{label}: golden replay configured but unavailable ({err})") from err
        assert self.golden_bag is not None
        out = Path(tempfile.mkdtemp(prefix=".golden.", dir=self.staging))
        try:
            result = replay_bag(
                self.golden_bag, out / "replay", stage, params=self.vehicle_params, public_key=self.public_key_path
            )
        except RoadloopError as err:
            raise BridgeError(f"{label}: golden replay of {self.golden_bag.name} failed: {err}") from err
        finally:
            shutil.rmtree(out, ignore_errors=True)
        det = result.deterministic
        faults = {str(k).lower(): v for k, v in dict(det.get("faults", {})).items()}
        if int(det.get("frames", 0)) == 0:
            raise BridgeError(f"{label}: golden replay of {self.golden_bag.name} produced no frame")
        stops = int(det.get("fallback_decisions", 0))
        if stops or int(det.get("fallbacks", 0)):
            frames = int(det.get("fallback_frames", 0))
            raise BridgeError(
                f"{label}: golden replay stopped the car on {stops} decision(s) "
                f"({frames} frame(s), {stops - frames} watchdog tick(s))"
            )
        if any("nan" in k for k in faults):
            raise BridgeError(f"{label}: golden replay produced NaN outputs")
