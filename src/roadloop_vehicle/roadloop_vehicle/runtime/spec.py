"""What the runtime needs from a bundle manifest: tensor names, shapes, normalisation."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from roadloop_vehicle.errors import ModelError

__all__ = ["InputSpec", "ModelInputs", "ModelOutputs", "PolicySpec"]

IMAGE, EGO, ROUTE = "image", "ego_state", "route_target"
WAYPOINTS, TARGET_SPEED = "waypoints", "target_speed"


@dataclass(frozen=True)
class InputSpec:
    name: str
    shape: tuple[int, ...]
    mean: npt.NDArray[np.float32] | None = None
    std: npt.NDArray[np.float32] | None = None
    scale: float | None = None


@dataclass(frozen=True)
class PolicySpec:
    inputs: dict[str, InputSpec]
    output_shapes: dict[str, tuple[int, ...]]

    @property
    def horizon(self) -> int:
        return self.output_shapes[WAYPOINTS][1]

    @property
    def uses_image(self) -> bool:
        return IMAGE in self.inputs

    @classmethod
    def from_manifest(cls, manifest: Mapping[str, Any], where: str = "manifest.json") -> PolicySpec:
        """Parse and check the contract's tensor names/shapes (batch 1)."""
        try:
            inputs: dict[str, InputSpec] = {}
            for raw in manifest["inputs"]:
                shape = tuple(int(d) for d in raw["shape"])
                norm = raw.get("normalization") or {}
                mean = np.asarray(norm["mean"], np.float32) if "mean" in norm else None
                std = np.asarray(norm["std"], np.float32) if "std" in norm else None
                scale = float(norm["scale"]) if "scale" in norm else None
                if std is not None and np.any(std == 0):
                    raise ModelError(f"{where}: inputs.{raw['name']}.normalization.std has a zero")
                inputs[str(raw["name"])] = InputSpec(str(raw["name"]), shape, mean, std, scale)
            outputs = {str(o["name"]): tuple(int(d) for d in o["shape"]) for o in manifest["outputs"]}
        except (KeyError, TypeError, ValueError) as err:
            raise ModelError(f"{where}: malformed inputs/outputs: {err!r}") from None
        _expect(where, inputs, EGO, (1, 4))
        _expect(where, inputs, ROUTE, (1, 2))
        if IMAGE in inputs and (len(inputs[IMAGE].shape) != 4 or inputs[IMAGE].shape[:2] != (1, 3)):
            raise ModelError(f"{where}: input 'image' must have shape (1,3,H,W), got {inputs[IMAGE].shape}")
        unknown = sorted(set(inputs) - {IMAGE, EGO, ROUTE})
        if unknown:
            raise ModelError(f"{where}: unknown model input(s) {', '.join(unknown)}")
        wp = outputs.get(WAYPOINTS)
        if wp is None or len(wp) != 3 or wp[0] != 1 or wp[2] != 2:
            raise ModelError(f"{where}: output 'waypoints' must have shape (1,K,2), got {wp}")
        if outputs.get(TARGET_SPEED) != (1, 1):
            raise ModelError(f"{where}: output 'target_speed' must have shape (1,1), got {outputs.get(TARGET_SPEED)}")
        return cls(inputs, outputs)


def _expect(where: str, inputs: Mapping[str, InputSpec], name: str, shape: Sequence[int]) -> None:
    if name not in inputs:
        raise ModelError(f"{where}: missing model input '{name}'")
    if inputs[name].shape != tuple(shape):
        raise ModelError(f"{where}: input '{name}' must have shape {tuple(shape)}, got {inputs[name].shape}")


@dataclass
class ModelInputs:
    """Features as the observation assembler hands them over (not yet normalised)."""

    image: npt.NDArray[np.uint8] | None  # (H, W, 3)
    ego_state: npt.NDArray[np.float32]  # (4,)
    route_target: npt.NDArray[np.float32]  # (2,)


@dataclass(frozen=True)
class ModelOutputs:
    waypoints: npt.NDArray[np.float32]  # (K, 2), a copy owned by the caller
    target_speed: float
    inference_ms: float  # measured wall time of the backend call

    @property
    def finite(self) -> bool:
        return bool(np.all(np.isfinite(self.waypoints))) and bool(np.isfinite(self.target_speed))
