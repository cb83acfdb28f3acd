"""The one load of a bundle: what the onboard loader runs, and what the bridge runs before it installs one.

    model = load_model(bundle_dir, public_key, observation, runtime_config)   # LoadedModel, or a RoadloopError

In order: the bundle's files as regular files, read once into memory; the Ed25519 signature,
the file set and every sha256 of those bytes (`load_bundle`); the observation spec against the
vehicle's (`check_observation_compatible`); the tensors against the tensor table for that spec
(`PolicySpec.from_manifest` -> `check_model_io`); the inference session built from the verified
bytes; a warm-up whose outputs must be finite. A bundle that passes here on the bridge is one
the drive node will load, so `MODELS/current` never names a model the car cannot run.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from roadloop_core.bundle import Manifest, check_observation_compatible, load_bundle
from roadloop_core.contract.observation import ObservationSpec
from roadloop_vehicle.errors import ModelError
from roadloop_vehicle.runtime.base import RuntimeConfig
from roadloop_vehicle.runtime.policy_runtime import PolicyRuntime
from roadloop_vehicle.runtime.spec import PolicySpec

__all__ = ["POLICY_FILE", "LoadedModel", "load_model"]

POLICY_FILE = "policy.onnx"


@dataclass(frozen=True)
class LoadedModel:
    path: Path
    manifest: Manifest
    runtime: PolicyRuntime

    @property
    def label(self) -> str:
        return f"{self.manifest.name}-v{self.manifest.version}"


def load_model(
    bundle_dir: Path, public_key: Ed25519PublicKey, observation: ObservationSpec, runtime_config: RuntimeConfig
) -> LoadedModel:
    """Verify and load a bundle as the drive node does; ModelError/BundleError names why it is refused."""
    bundle = load_bundle(bundle_dir, public_key)
    manifest = bundle.manifest
    check_observation_compatible(manifest, observation)
    # the model's tensors against the (now known to be the vehicle's) observation spec: image size, horizon
    spec = PolicySpec.from_manifest(manifest, f"{bundle_dir}/manifest.json")
    onnx = bundle.files.get(POLICY_FILE)
    if onnx is None:
        raise ModelError(f"{bundle_dir}: the bundle has no {POLICY_FILE}")
    runtime = PolicyRuntime(onnx, spec, runtime_config, where=str(bundle_dir / POLICY_FILE))
    warm = runtime.warmup(1)
    if warm is not None and not warm.finite:
        raise ModelError(f"{bundle_dir}: model outputs NaN/inf on the warm-up input")
    return LoadedModel(bundle_dir, manifest, runtime)
