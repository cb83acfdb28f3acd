"""The model bundle: the only thing that crosses from cluster to vehicle.

A folder with `policy.onnx`, `manifest.json` (name, version, tensor specs with
normalisation, observation spec, dataset id, training config, metrics, sha256 of
every file) and `manifest.sig` (Ed25519 over the exact manifest bytes).

    manifest = write_bundle(out, files={"policy.onnx": onnx}, manifest=Manifest(...), signing_key=key)
    manifest = verify_bundle(out, public_key)        # BundleError says why it is refused
    loaded = load_bundle(out, public_key)            # the same checks, keeping the verified bytes in memory
"""

from roadloop_core.bundle.keys import generate_keypair, load_private_key, load_public_key
from roadloop_core.bundle.manifest import BUNDLE_FORMAT, Manifest, TensorSpec, check_observation_compatible
from roadloop_core.bundle.store import (
    MANIFEST_FILE,
    SIGNATURE_FILE,
    LoadedBundle,
    load_bundle,
    read_manifest,
    sha256_file,
    verify_bundle,
    write_bundle,
)

__all__ = [
    "BUNDLE_FORMAT",
    "MANIFEST_FILE",
    "SIGNATURE_FILE",
    "LoadedBundle",
    "Manifest",
    "TensorSpec",
    "check_observation_compatible",
    "generate_keypair",
    "load_bundle",
    "load_private_key",
    "load_public_key",
    "read_manifest",
    "sha256_file",
    "verify_bundle",
    "write_bundle",
]
