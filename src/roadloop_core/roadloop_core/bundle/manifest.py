"""manifest.json: what a bundle holds and how the vehicle must feed it."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from roadloop_core.errors import BundleError

__all__ = ["BUNDLE_FORMAT", "Manifest", "TensorSpec", "check_observation_compatible"]

BUNDLE_FORMAT = "roadloop-bundle/1"


@dataclass(frozen=True)
class TensorSpec:
    """One ONNX input or output; `normalization` is {"mean": [...], "std": [...]} or {"scale": s}."""

    name: str
    shape: tuple[int, ...]
    dtype: str = "float32"
    normalization: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "shape": list(self.shape), "dtype": self.dtype}
        if self.normalization is not None:
            out["normalization"] = self.normalization
        return out

    @classmethod
    def from_json(cls, raw: Any, where: str) -> TensorSpec:
        if not isinstance(raw, dict):
            raise BundleError(f"{where}: expected an object")
        try:
            return cls(
                name=str(raw["name"]),
                shape=tuple(int(d) for d in raw["shape"]),
                dtype=str(raw.get("dtype", "float32")),
                normalization=raw.get("normalization"),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise BundleError(f"{where}: invalid tensor spec ({err})") from None


@dataclass(frozen=True)
class Manifest:
    name: str
    version: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    observation: dict[str, Any]
    dataset_id: str = ""
    training_config: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, Any] = field(default_factory=dict)
    files: dict[str, str] = field(default_factory=dict)
    created: str = ""
    format: str = BUNDLE_FORMAT

    def input(self, name: str) -> TensorSpec | None:
        return next((t for t in self.inputs if t.name == name), None)

    def output(self, name: str) -> TensorSpec | None:
        return next((t for t in self.outputs if t.name == name), None)

    def to_json_bytes(self) -> bytes:
        doc = {
            "format": self.format,
            "name": self.name,
            "version": self.version,
            "created": self.created,
            "inputs": [t.to_json() for t in self.inputs],
            "outputs": [t.to_json() for t in self.outputs],
            "observation": self.observation,
            "dataset_id": self.dataset_id,
            "training_config": self.training_config,
            "metrics": self.metrics,
            "files": dict(sorted(self.files.items())),
        }
        return (json.dumps(doc, indent=2, sort_keys=False, allow_nan=False) + "\n").encode()

    @classmethod
    def from_json_bytes(cls, data: bytes, where: str = "manifest.json") -> Manifest:
        try:
            raw = json.loads(data)
        except (UnicodeDecodeError, json.JSONDecodeError) as err:
            raise BundleError(f"{where}: not valid JSON ({err})") from None
        if not isinstance(raw, dict):
            raise BundleError(f"{where}: expected a JSON object")
        if raw.get("format") != BUNDLE_FORMAT:
            raise BundleError(f"{where}: format is {raw.get('format')!r}, expected {BUNDLE_FORMAT!r}")
        try:
            version = raw["version"]
            if not isinstance(version, int) or isinstance(version, bool) or version < 1:
                raise BundleError(f"{where}: version must be a positive integer, got {version!r}")
            files = raw["files"]
            if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
                raise BundleError(f"{where}: files must map file names to sha256 strings")
            return cls(
                name=str(raw["name"]),
                version=version,
                created=str(raw.get("created", "")),
                inputs=tuple(TensorSpec.from_json(t, f"{where}: inputs[{i}]") for i, t in enumerate(raw["inputs"])),
                outputs=tuple(TensorSpec.from_json(t, f"{where}: outputs[{i}]") for i, t in enumerate(raw["outputs"])),
                observation=dict(raw["observation"]),
                dataset_id=str(raw.get("dataset_id", "")),
                training_config=dict(raw.get("training_config", {})),
                metrics=dict(raw.get("metrics", {})),
                files=dict(files),
            )
        except KeyError as err:
            raise BundleError(f"{where}: missing field {err}") from None
        except (TypeError, ValueError) as err:
            raise BundleError(f"{where}: {err}") from None


def check_observation_compatible(manifest: Manifest, vehicle_observation: dict[str, Any]) -> None:
    """Refuse a bundle whose observation spec differs from the vehicle's in any field both define."""
    bundle_obs = manifest.observation
    differing = [
        f"{key}: bundle {bundle_obs.get(key)!r} != vehicle {vehicle_observation.get(key)!r}"
        for key in sorted(set(bundle_obs) | set(vehicle_observation))
        if bundle_obs.get(key) != vehicle_observation.get(key)
    ]
    if differing:
        raise BundleError(
            f"bundle {manifest.name} v{manifest.version}: observation spec incompatible ({'; '.join(differing)})"
        )
