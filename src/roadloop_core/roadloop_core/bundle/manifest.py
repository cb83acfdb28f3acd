"""manifest.json: what a bundle holds and how the vehicle must feed it.

The tensor entries and their rules are the tensor table's (`roadloop_core.contract.tensors`:
`TensorSpec`, `check_model_io`); the observation spec is the typed `ObservationSpec`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.contract.tensors import TensorSpec
from roadloop_core.errors import BundleError, ConfigError

__all__ = ["BUNDLE_FORMAT", "Manifest", "TensorSpec", "check_observation_compatible"]

BUNDLE_FORMAT = "roadloop-bundle/1"


@dataclass(frozen=True)
class Manifest:
    name: str
    version: int
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    observation: ObservationSpec
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
            "observation": self.observation.to_dict(),
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
        except RecursionError:
            raise BundleError(f"{where}: not valid JSON (nested too deeply)") from None
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
            try:
                observation = ObservationSpec.from_dict(raw["observation"], f"{where}: observation", complete=True)
            except ConfigError as err:
                raise BundleError(str(err)) from None
            return cls(
                name=str(raw["name"]),
                version=version,
                created=str(raw.get("created", "")),
                inputs=tuple(TensorSpec.from_json(t, f"{where}: inputs[{i}]") for i, t in enumerate(raw["inputs"])),
                outputs=tuple(TensorSpec.from_json(t, f"{where}: outputs[{i}]") for i, t in enumerate(raw["outputs"])),
                observation=observation,
                dataset_id=str(raw.get("dataset_id", "")),
                training_config=dict(raw.get("training_config", {})),
                metrics=dict(raw.get("metrics", {})),
                files=dict(files),
            )
        except KeyError as err:
            raise BundleError(f"{where}: missing field {err}") from None
        except (TypeError, ValueError) as err:
            raise BundleError(f"{where}: {err}") from None


def check_observation_compatible(manifest: Manifest, vehicle_observation: ObservationSpec) -> None:
    """Refuse a bundle whose observation spec differs from the vehicle's in any field."""
    differing = [
        f"{key}: bundle {ours!r} != vehicle {theirs!r}"
        for key, ours, theirs in sorted(manifest.observation.differences(vehicle_observation))
    ]
    if differing:
        raise BundleError(
            f"bundle {manifest.name} v{manifest.version}: observation spec incompatible ({'; '.join(differing)})"
        )
