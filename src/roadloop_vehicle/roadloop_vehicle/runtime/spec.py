"""What the runtime needs from a bundle manifest: its tensors, checked against the tensor table.

The rules (names, batch-1 shapes with the image size and horizon of the manifest's observation
spec, normalisation) are `roadloop_core.contract.tensors.check_model_io`; this module only turns
the checked manifest entries into normalisation arrays.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

from roadloop_core.bundle import Manifest
from roadloop_core.contract.tensors import INPUTS, WAYPOINTS, ModelTensor, check_model_io
from roadloop_core.errors import BundleError
from roadloop_vehicle.errors import ModelError

__all__ = ["InputSpec", "ModelInputs", "ModelOutputs", "PolicySpec"]

# Features as the observation assembler hands them over, by dataset array name (not normalised).
ModelInputs: TypeAlias = Mapping[str, npt.NDArray[Any]]


@dataclass(frozen=True)
class InputSpec:
    tensor: ModelTensor
    shape: tuple[int, ...]
    mean: npt.NDArray[np.float32] | None = None
    std: npt.NDArray[np.float32] | None = None
    scale: float | None = None

    @property
    def name(self) -> str:
        return self.tensor.name


@dataclass(frozen=True)
class PolicySpec:
    inputs: dict[str, InputSpec]
    output_shapes: dict[str, tuple[int, ...]]

    @property
    def horizon(self) -> int:
        return self.output_shapes[WAYPOINTS.name][1]

    @classmethod
    def from_manifest(cls, manifest: Manifest, where: str = "manifest.json") -> PolicySpec:
        """The manifest's tensors, refused (ModelError naming the fault) unless they follow the contract."""
        try:
            check_model_io(manifest.inputs, manifest.outputs, manifest.observation, where)
        except BundleError as err:
            raise ModelError(str(err)) from None
        by_name = {t.name: t for t in INPUTS}
        inputs: dict[str, InputSpec] = {}
        for given in manifest.inputs:
            norm = given.normalization or {}
            mean = np.asarray(norm["mean"], np.float32) if "mean" in norm else None
            std = np.asarray(norm["std"], np.float32) if "std" in norm else None
            scale = float(norm["scale"]) if "scale" in norm else None
            inputs[given.name] = InputSpec(by_name[given.name], given.shape, mean, std, scale)
        return cls(inputs, {o.name: o.shape for o in manifest.outputs})


@dataclass(frozen=True)
class ModelOutputs:
    waypoints: npt.NDArray[np.float32]  # (K, 2), a copy owned by the caller
    target_speed: float
    inference_ms: float  # measured wall time of the backend call

    @property
    def finite(self) -> bool:
        return bool(np.all(np.isfinite(self.waypoints))) and bool(np.isfinite(self.target_speed))
