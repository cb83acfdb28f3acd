"""Model pull: a channel's new bundle is downloaded, verified, checked and only then made current.

    MODELS/staging/<bundle_id>/        download in progress (resumed with HTTP Range after a crash)
    MODELS/versions/<name>-v<version>/ verified bundles (the previous one stays for rollback)
    MODELS/current -> versions/...     switched atomically (new symlink + os.replace); the
                                       ModelManager follows it between two frames

Checks, in order: every file's size, Ed25519 signature against the configured public
key and every sha256 (`verify_bundle`), the observation spec against the vehicle's,
and, when a golden bag is configured, a replay with no fallback frame and no NaN.
A refused bundle id is remembered (STATE/models.json) and not downloaded again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from roadloop_core.bundle import MANIFEST_FILE, Manifest, check_observation_compatible, verify_bundle
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.contract.wire import SHA256_RE, check_name
from roadloop_core.errors import RoadloopError
from roadloop_core.fsio import atomic_write_json, fsync_dir, replace_symlink
from roadloop_core.hub_client import HubClient
from roadloop_vehicle.bridge.errors import BridgeError
from roadloop_vehicle.params import VehicleParams

__all__ = ["ModelPuller", "PullResult", "current_label", "switch_current"]


@dataclass(frozen=True)
class PullResult:
    action: str  # none | unchanged | installed | switched | refused
    label: str = ""
    reason: str = ""


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
    ) -> None:
        self.client, self.channel = client, channel
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
            return {"refused": {}}

    def _save_state(self, state: dict[str, Any]) -> None:
        atomic_write_json(self.state_path, state, indent=2)

    def _refuse(self, bundle_id: str, label: str, reason: str) -> PullResult:
        state = self._state()
        state.setdefault("refused", {})[bundle_id] = reason
        self._save_state(state)
        shutil.rmtree(self.staging / bundle_id, ignore_errors=True)
        return PullResult("refused", label, reason)

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
        except (ValueError, TypeError) as err:
            return self._refuse(bundle_id, label, f"release {label}: {err}")
        current = self.models_dir / "current"
        if current.is_symlink() and _manifest_sha(current) == bundle_id:
            return PullResult("unchanged", label)
        refused = self._state().get("refused", {})
        if bundle_id in refused:
            return PullResult("refused", label, str(refused[bundle_id]))
        installed = self.versions / label
        if installed.is_dir() and _manifest_sha(installed) == bundle_id:
            try:  # a rollback to a version kept on disk: verified again, then switched
                verify_bundle(installed, self.public_key)
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
        try:
            manifest = self._check(stage, label)
        except RoadloopError as err:
            return self._refuse(bundle_id, label, str(err).replace(str(stage), label))
        fsync_dir(stage)
        os.rename(stage, installed)
        switch_current(self.models_dir, installed)
        return PullResult("installed", f"{manifest.name}-v{manifest.version}")

    def _check(self, stage: Path, label: str) -> Manifest:
        manifest = verify_bundle(stage, self.public_key)
        if f"{manifest.name}-v{manifest.version}" != label:
            raise BridgeError(f"{label}: manifest says {manifest.name} v{manifest.version}")
        check_observation_compatible(manifest, self.observation)
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
        if int(det.get("fallback_frames", 0)) or int(det.get("fallbacks", 0)):
            raise BridgeError(f"{label}: golden replay fell back on {det.get('fallback_frames')} frame(s)")
        if any("nan" in k for k in faults):
            raise BridgeError(f"{label}: golden replay produced NaN outputs")
