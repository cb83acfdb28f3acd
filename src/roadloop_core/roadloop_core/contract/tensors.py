"""The model's input and output tensors and the dataset arrays behind them: one table every side reads.

    ARRAYS    what a dataset shard holds, per sample, in file order (the builder writes them)
    INPUTS    the ONNX graph's inputs, batch first, each fed by one array (normalised as it says)
    OUTPUTS   the ONNX graph's outputs, each trained against one array (or one field of it)

Readers: the dataset builder (array names, dtypes, which arrays get statistics), the trainer (batch
keys, normalisation, losses), the exporter (ONNX names, example inputs, the manifest's tensor specs
via `manifest_tensors`), the vehicle's bundle check (`check_model_io`) and the onboard runtime
(IO buffers and normalisation). Shapes are symbolic: "batch" plus the dims of `DIMS`, whose sizes
come from the ObservationSpec, so the image size and the horizon are written down only there.

Adding an input (a LiDAR grid, say; `ego_history` came in this way) means: a DatasetArray row in
ARRAYS (with a DIMS entry for a new size), a ModelTensor row in INPUTS, and the function that
computes the array from a synchronised frame (`roadloop_core.features.compute.FEATURES`). The
builder, trainer, exporter and runtime loop over the table; only the network itself has to learn
what to do with the new tensor.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal, TypeAlias

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.errors import BundleError

__all__ = [
    "ARRAYS",
    "BATCH",
    "COMMAND_ARRAY",
    "DIMS",
    "EGO_HISTORY",
    "EGO_HISTORY_ARRAY",
    "EGO_STATE",
    "EGO_STATE_ARRAY",
    "IMAGE",
    "IMAGE_ARRAY",
    "INPUTS",
    "OUTPUTS",
    "ROUTE_TARGET",
    "ROUTE_TARGET_ARRAY",
    "SOURCE_ARRAY",
    "STAMP_ARRAY",
    "TARGET_SPEED",
    "WAYPOINTS",
    "WAYPOINTS_ARRAY",
    "DatasetArray",
    "Dim",
    "ModelTensor",
    "TensorSpec",
    "check_model_io",
    "dataset_arrays",
    "feature_arrays",
    "manifest_tensors",
    "model_inputs",
    "resolve_shape",
    "stats_arrays",
]

Dim: TypeAlias = int | str  # a size, or the name of one ("batch" or a key of DIMS)
BATCH = "batch"

# Named dims and the ObservationSpec field each one is read from.
DIMS: dict[str, Callable[[ObservationSpec], int]] = {
    "H": lambda obs: obs.image_height,
    "W": lambda obs: obs.image_width,
    "K": lambda obs: obs.label_horizon,
    "P": lambda obs: obs.ego_history_steps,
}


def resolve_shape(shape: Sequence[Dim], observation: ObservationSpec, batch: int = 1) -> tuple[int, ...]:
    """`shape` with every named dim replaced by its size for `observation` ("batch" by `batch`)."""
    return tuple(batch if d == BATCH else DIMS[d](observation) if isinstance(d, str) else d for d in shape)


@dataclass(frozen=True)
class DatasetArray:
    """One array of a dataset shard: per-sample shape and dtype, and what it is."""

    name: str
    dtype: str  # numpy dtype name
    shape: tuple[Dim, ...]  # one sample's (the shard adds a leading N)
    unit: str
    kind: Literal["feature", "label", "index"]  # feature: also computed on the vehicle; label: builder only
    fields: tuple[str, ...] = ()  # names of the entries along the last axis
    stats: bool = False  # the builder records mean/std (of the train split) in the index
    pooled_stats: bool = False  # ... and also pooled over the leading (per-step) axis
    needs: str | None = None  # ObservationSpec field the array's existence depends on ...
    absent_when: Any = None  # ... the array exists unless that field has this value

    def present(self, observation: ObservationSpec) -> bool:
        return self.needs is None or getattr(observation, self.needs) != self.absent_when

    def absence(self) -> str:
        """What the observation spec says when the array is absent: 'no camera', 'route_source: none'."""
        return f"no {self.needs}" if self.absent_when is None else f"{self.needs}: {self.absent_when}"

    def presence(self, observation: ObservationSpec) -> str:
        """Why the array is there: 'a camera', 'route_source: topic'."""
        if self.needs is None:
            return "no condition"
        return f"a {self.needs}" if self.absent_when is None else f"{self.needs}: {getattr(observation, self.needs)}"

    def resolve(self, observation: ObservationSpec) -> tuple[int, ...]:
        return resolve_shape(self.shape, observation)

    def field(self, name: str) -> int:
        """Position of entry `name` on the last axis."""
        return self.fields.index(name)


IMAGE_ARRAY = DatasetArray(
    "image", "uint8", ("H", "W", 3), "RGB 0-255, box-filter resized", "feature", ("r", "g", "b"), needs="camera"
)
EGO_STATE_ARRAY = DatasetArray(
    "ego_state", "float32", (4,), "m/s, rad/s, m/s², m/s²", "feature",
    fields=("speed", "yaw_rate", "accel_x", "accel_y"), stats=True,
)  # fmt: skip
ROUTE_TARGET_ARRAY = DatasetArray(
    "route_target", "float32", (2,), "m, ego frame (x forward, y left)", "feature", ("x", "y"), stats=True,
    needs="route_source", absent_when="none",
)  # fmt: skip
EGO_HISTORY_ARRAY = DatasetArray(
    "ego_history", "float32", ("P", 4), "m/s, rad/s, m/s², rad; row j-1 is the ego at t - j * ego_history_dt_s",
    "feature", fields=("speed", "yaw_rate", "accel_x", "heading_change"), stats=True,
    needs="ego_history_steps", absent_when=0,
)  # fmt: skip
WAYPOINTS_ARRAY = DatasetArray(
    "waypoints", "float32", ("K", 2), "m, ego frame; waypoint k is the pose at (k+1) * label_dt_s", "label",
    fields=("x", "y"), stats=True, pooled_stats=True,
)  # fmt: skip
COMMAND_ARRAY = DatasetArray(
    "command", "float32", (2,), "rad, m/s (the recorded driver command)", "label", ("steering_angle", "speed"), True
)
STAMP_ARRAY = DatasetArray("stamp_ns", "int64", (), "ns, sensor clock", "index")
SOURCE_ARRAY = DatasetArray("source", "int32", (), "index into the dataset index's sources", "index")
ARRAYS = (
    IMAGE_ARRAY, EGO_STATE_ARRAY, ROUTE_TARGET_ARRAY, EGO_HISTORY_ARRAY, WAYPOINTS_ARRAY, COMMAND_ARRAY, STAMP_ARRAY,
    SOURCE_ARRAY,
)  # fmt: skip


@dataclass(frozen=True)
class ModelTensor:
    """One ONNX input or output: name, batch-first shape, unit, normalisation, and the array behind it.

    normalization "stats": (x - mean) / std with the dataset's statistics of `array` (the manifest
    carries the numbers); "scale": x * scale; "none": as is. `channels_first` moves the array's last
    axis to the front ((H, W, C) -> (C, H, W)); `column` takes one field of the array, keeping the axis.
    """

    name: str
    direction: Literal["input", "output"]
    shape: tuple[Dim, ...]
    unit: str
    array: DatasetArray
    normalization: Literal["stats", "scale", "none"] = "none"
    scale: float | None = None
    channels_first: bool = False
    column: str | None = None
    dtype: str = "float32"

    @property
    def optional(self) -> bool:
        """Absent from some models (the image, in state-only models)."""
        return self.array.needs is not None

    def present(self, observation: ObservationSpec) -> bool:
        return self.array.present(observation)

    def resolve(self, observation: ObservationSpec, batch: int = 1) -> tuple[int, ...]:
        return resolve_shape(self.shape, observation, batch)

    @property
    def column_index(self) -> int | None:
        return None if self.column is None else self.array.field(self.column)


# Input tensors take the name of the array that feeds them.
IMAGE = ModelTensor(
    IMAGE_ARRAY.name, "input", (BATCH, 3, "H", "W"), "RGB in [0, 1]", IMAGE_ARRAY, "scale", 1.0 / 255.0, True
)
EGO_STATE = ModelTensor(EGO_STATE_ARRAY.name, "input", (BATCH, 4), "normalised", EGO_STATE_ARRAY, "stats")
ROUTE_TARGET = ModelTensor(ROUTE_TARGET_ARRAY.name, "input", (BATCH, 2), "normalised", ROUTE_TARGET_ARRAY, "stats")
EGO_HISTORY = ModelTensor(EGO_HISTORY_ARRAY.name, "input", (BATCH, "P", 4), "normalised", EGO_HISTORY_ARRAY, "stats")
WAYPOINTS = ModelTensor(WAYPOINTS_ARRAY.name, "output", (BATCH, "K", 2), "m, ego frame", WAYPOINTS_ARRAY)
TARGET_SPEED = ModelTensor("target_speed", "output", (BATCH, 1), "m/s", COMMAND_ARRAY, column="speed")
INPUTS = (IMAGE, EGO_STATE, ROUTE_TARGET, EGO_HISTORY)  # the ONNX graph's input order
OUTPUTS = (WAYPOINTS, TARGET_SPEED)  # the ONNX graph's output order (and the policy's return order)


def dataset_arrays(observation: ObservationSpec) -> tuple[DatasetArray, ...]:
    """The arrays of a dataset built with `observation`, in file order."""
    return tuple(a for a in ARRAYS if a.present(observation))


def feature_arrays(observation: ObservationSpec) -> tuple[DatasetArray, ...]:
    """The arrays computed from a synchronised frame (on the vehicle as in the builder)."""
    return tuple(a for a in dataset_arrays(observation) if a.kind == "feature")


def stats_arrays(observation: ObservationSpec | None = None) -> tuple[DatasetArray, ...]:
    """The arrays the index keeps statistics of (of a dataset built with `observation`, when given)."""
    return tuple(a for a in ARRAYS if a.stats and (observation is None or a.present(observation)))


def model_inputs(observation: ObservationSpec) -> tuple[ModelTensor, ...]:
    """The inputs of a model trained on data observed with `observation`, in graph order."""
    return tuple(t for t in INPUTS if t.present(observation))


# -- the manifest's form: inputs/outputs entries of manifest.json -----------------------------------


@dataclass(frozen=True)
class TensorSpec:
    """One ONNX input or output as manifest.json lists it (batch 1).

    `normalization` is {"mean": [...], "std": [...]} or {"scale": s} (absent for outputs).
    """

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


Stats: TypeAlias = Mapping[str, tuple[Sequence[Any], Sequence[Any]]]  # array name -> (mean, std), nested like a sample


def manifest_tensors(
    observation: ObservationSpec, stats: Stats
) -> tuple[tuple[TensorSpec, ...], tuple[TensorSpec, ...]]:
    """(inputs, outputs) of manifest.json for a model of `observation`; `stats` holds the (mean, std) the
    model was trained with for every array a "stats" input normalises."""

    def spec(t: ModelTensor) -> TensorSpec:
        norm: dict[str, Any] | None = None
        if t.normalization == "stats":
            mean, std = stats[t.array.name]
            norm = {"mean": list(mean), "std": list(std)}
        elif t.normalization == "scale":
            norm = {"scale": t.scale}
        return TensorSpec(t.name, t.resolve(observation), t.dtype, norm)

    return tuple(spec(t) for t in model_inputs(observation)), tuple(spec(t) for t in OUTPUTS)


def _dims_note(t: ModelTensor, observation: ObservationSpec) -> str:
    named = [d for d in t.shape if isinstance(d, str) and d != BATCH]
    return f" ({', '.join(f'{d}={DIMS[d](observation)}' for d in named)} from the observation spec)" if named else ""


def _nested_shape(values: Any) -> tuple[int, ...] | None:
    """The shape of a nested list of numbers (None if it is ragged or not a list)."""
    if not isinstance(values, list):
        return None
    if values and isinstance(values[0], list):
        inner = {_nested_shape(v) for v in values}
        return None if len(inner) != 1 or None in inner else (len(values), *next(iter(inner)))  # type: ignore[misc]
    return (len(values),) if all(not isinstance(v, list) for v in values) else None


def _flat(values: Any) -> list[Any]:
    return [x for v in values for x in _flat(v)] if isinstance(values, list) else [values]


def _check_normalization(t: ModelTensor, given: TensorSpec, observation: ObservationSpec, where: str) -> None:
    norm = given.normalization or {}
    if t.normalization == "stats":
        want = t.resolve(observation)[1:]  # one sample's shape: [4] for the ego state, [P][4] for its history
        for key in ("mean", "std"):
            values = norm.get(key)
            if _nested_shape(values) != want:
                size = " x ".join(map(str, want))
                raise BundleError(f"{where}: inputs.{t.name}.normalization.{key} must be a list of {size} numbers")
            if not all(
                isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in _flat(values)
            ):
                raise BundleError(f"{where}: inputs.{t.name}.normalization.{key} must hold finite numbers")
        if any(v == 0 for v in _flat(norm["std"])):
            raise BundleError(f"{where}: inputs.{t.name}.normalization.std has a zero")
    elif t.normalization == "scale":
        scale = norm.get("scale")
        if not isinstance(scale, (int, float)) or isinstance(scale, bool) or not math.isfinite(scale) or scale == 0:
            raise BundleError(f"{where}: inputs.{t.name}.normalization.scale must be a non-zero number")


def check_model_io(
    inputs: Sequence[TensorSpec], outputs: Sequence[TensorSpec], observation: ObservationSpec, where: str
) -> None:
    """Refuse model tensors that are not what the table says a model of `observation` takes and gives:
    names, batch-1 shapes (image size and horizon from `observation`), dtypes, normalisation. Extra
    outputs are allowed (nobody reads them)."""
    given = {t.name: t for t in inputs}
    known = {t.name: t for t in INPUTS}
    unknown = sorted(set(given) - set(known))
    if unknown:
        raise BundleError(f"{where}: unknown model input(s) {', '.join(unknown)}")
    for t in INPUTS:
        if t.name in given and not t.present(observation):
            raise BundleError(f"{where}: model input '{t.name}' but the observation spec has {t.array.absence()}")
    for t in model_inputs(observation):
        if t.name not in given:
            why = f" (the observation spec has {t.array.presence(observation)})" if t.optional else ""
            raise BundleError(f"{where}: missing model input '{t.name}'{why}")
        _check_tensor(t, given[t.name], observation, where)
        _check_normalization(t, given[t.name], observation, where)
    produced = {t.name: t for t in outputs}
    for t in OUTPUTS:
        if t.name not in produced:
            raise BundleError(f"{where}: missing model output '{t.name}'")
        _check_tensor(t, produced[t.name], observation, where)


def _check_tensor(t: ModelTensor, given: TensorSpec, observation: ObservationSpec, where: str) -> None:
    want = t.resolve(observation)
    if given.shape != want:
        raise BundleError(
            f"{where}: {t.direction} '{t.name}' must have shape {want}{_dims_note(t, observation)}, got {given.shape}"
        )
    if given.dtype != t.dtype:
        raise BundleError(f"{where}: {t.direction} '{t.name}' must be {t.dtype}, got {given.dtype}")
