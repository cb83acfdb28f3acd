"""The tensor table: its invariants, shapes resolved from the observation spec, the manifest's form, the checks."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.contract.tensors import (
    ARRAYS,
    BATCH,
    DIMS,
    INPUTS,
    OUTPUTS,
    TensorSpec,
    check_model_io,
    dataset_arrays,
    feature_arrays,
    manifest_tensors,
    model_inputs,
    resolve_shape,
)
from roadloop_core.errors import BundleError
from roadloop_core.features import FEATURES

CAMERA = ObservationSpec(image_width=48, image_height=32, label_horizon=6)
STATE = dataclasses.replace(CAMERA, camera=None)
# a car's own logs: no camera, no route, 3 steps of ego history
REAL = dataclasses.replace(STATE, route=None, route_source="none", ego_history_steps=3)
STATS = {
    "ego_state": ([1.0, 0.0, 0.0, 0.0], [2.0, 1.0, 1.0, 1.0]),
    "route_target": ([10.0, 0.0], [3.0, 1.5]),
    "ego_history": ([[29.0, 0.0, 0.0, 0.0]] * 3, [[1.5, 0.02, 0.3, 0.01]] * 3),
}


def test_the_table_is_consistent() -> None:
    names = [a.name for a in ARRAYS]
    assert len(set(names)) == len(names)
    assert len({t.name for t in INPUTS + OUTPUTS}) == len(INPUTS + OUTPUTS)
    for t in INPUTS:
        assert (
            t.name == t.array.name and t.array in ARRAYS and t.direction == "input"
        )  # inputs carry their array's name
    for t in OUTPUTS:
        assert t.direction == "output" and t.array.kind == "label" and not t.optional
    for shape in [a.shape for a in ARRAYS] + [t.shape for t in INPUTS + OUTPUTS]:
        assert all(isinstance(d, int) or d in DIMS or d == BATCH for d in shape)
    spec_fields = {f.name for f in dataclasses.fields(ObservationSpec)}
    assert all(a.needs in spec_fields for a in ARRAYS if a.needs is not None)
    assert all(a.present(ObservationSpec()) != (a.name == "ego_history") for a in ARRAYS)  # the default spec's
    assert all(isinstance(size(ObservationSpec()), int) for size in DIMS.values())
    for t in INPUTS + OUTPUTS:
        assert t.shape[0] == BATCH
        if t.column is not None:
            assert t.column in t.array.fields


def test_every_feature_array_has_the_function_that_computes_it() -> None:
    assert set(FEATURES) == {a.name for a in ARRAYS if a.kind == "feature"}


@pytest.mark.parametrize(
    ("shape", "obs", "batch", "expected"),
    [
        ((BATCH, 3, "H", "W"), CAMERA, 1, (1, 3, 32, 48)),
        ((BATCH, "K", 2), CAMERA, 4, (4, 6, 2)),
        (("H", "W", 3), ObservationSpec(), 1, (64, 64, 3)),
        ((), CAMERA, 1, ()),
    ],
)
def test_named_dims_come_from_the_observation_spec(
    shape: tuple[Any, ...], obs: ObservationSpec, batch: int, expected: tuple[int, ...]
) -> None:
    assert resolve_shape(shape, obs, batch) == expected


def test_what_a_dataset_and_a_model_have_depends_on_the_camera() -> None:
    assert [a.name for a in dataset_arrays(CAMERA)] == [a.name for a in ARRAYS if a.name != "ego_history"]
    assert "image" not in [a.name for a in dataset_arrays(STATE)]
    assert [a.name for a in feature_arrays(CAMERA)] == ["image", "ego_state", "route_target"]
    assert [t.name for t in model_inputs(CAMERA)] == ["image", "ego_state", "route_target"]
    assert [t.name for t in model_inputs(STATE)] == ["ego_state", "route_target"]


def test_route_source_none_drops_the_route_input_and_ego_history_adds_one() -> None:
    assert [a.name for a in feature_arrays(REAL)] == ["ego_state", "ego_history"]
    assert [t.name for t in model_inputs(REAL)] == ["ego_state", "ego_history"]
    assert [t.resolve(REAL) for t in model_inputs(REAL)] == [(1, 4), (1, 3, 4)]
    hindsight = dataclasses.replace(REAL, route_source="hindsight")  # a route target, from the logged future
    assert [t.name for t in model_inputs(hindsight)] == ["ego_state", "route_target", "ego_history"]


def test_manifest_tensors_are_the_manifest_json_of_before() -> None:
    """The exact entries earlier exports wrote, so bundles stay byte-identical."""
    inputs, outputs = manifest_tensors(CAMERA, STATS)
    assert [t.to_json() for t in inputs] == [
        {"name": "image", "shape": [1, 3, 32, 48], "dtype": "float32", "normalization": {"scale": 1.0 / 255.0}},
        {"name": "ego_state", "shape": [1, 4], "dtype": "float32", "normalization": {"mean": [1.0, 0.0, 0.0, 0.0],
         "std": [2.0, 1.0, 1.0, 1.0]}},
        {"name": "route_target", "shape": [1, 2], "dtype": "float32", "normalization": {"mean": [10.0, 0.0],
         "std": [3.0, 1.5]}},
    ]  # fmt: skip
    assert [t.to_json() for t in outputs] == [
        {"name": "waypoints", "shape": [1, 6, 2], "dtype": "float32"},
        {"name": "target_speed", "shape": [1, 1], "dtype": "float32"},
    ]
    check_model_io(inputs, outputs, CAMERA, "m")
    state_in, state_out = manifest_tensors(STATE, STATS)
    assert [t.name for t in state_in] == ["ego_state", "route_target"]
    check_model_io(state_in, state_out, STATE, "m")
    real_in, real_out = manifest_tensors(REAL, STATS)
    assert real_in[1].to_json() == {
        "name": "ego_history", "shape": [1, 3, 4], "dtype": "float32",
        "normalization": {"mean": [[29.0, 0.0, 0.0, 0.0]] * 3, "std": [[1.5, 0.02, 0.3, 0.01]] * 3},
    }  # fmt: skip
    check_model_io(real_in, real_out, REAL, "m")


def _edit(which: str, tensor: str, **change: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    inputs, outputs = (list(x) for x in manifest_tensors(CAMERA, STATS))
    group = inputs if which == "in" else outputs
    i = next(i for i, t in enumerate(group) if t.name == tensor)
    if change.get("drop"):
        group.pop(i)
    else:
        group[i] = dataclasses.replace(group[i], **change)
    return inputs, outputs


def _edit_real(tensor: str, **change: Any) -> tuple[list[TensorSpec], list[TensorSpec]]:
    inputs, outputs = (list(x) for x in manifest_tensors(REAL, STATS))
    i = next(i for i, t in enumerate(inputs) if t.name == tensor)
    inputs[i] = dataclasses.replace(inputs[i], **change)
    return inputs, outputs


@pytest.mark.parametrize(
    ("tensors", "obs", "message"),
    [
        (_edit("in", "image", shape=(1, 3, 64, 64)), CAMERA, r"input 'image' must have shape \(1, 3, 32, 48\) \(H=32"),
        (
            _edit("in", "image", drop=True),
            CAMERA,
            "missing model input 'image' \\(the observation spec has a camera\\)",
        ),
        (manifest_tensors(CAMERA, STATS), STATE, "model input 'image' but the observation spec has no camera"),
        (_edit("in", "ego_state", drop=True), CAMERA, "missing model input 'ego_state'"),
        (_edit("in", "ego_state", name="lidar"), CAMERA, "unknown model input\\(s\\) lidar"),
        (_edit("in", "ego_state", dtype="float16"), CAMERA, "input 'ego_state' must be float32"),
        (_edit("in", "ego_state", normalization={"mean": [0] * 4, "std": [1, 0, 1, 1]}), CAMERA, "std has a zero"),
        (_edit("in", "route_target", normalization={"mean": [0.0]}), CAMERA, "route_target.normalization.mean must be"),
        (_edit("in", "image", normalization=None), CAMERA, "image.normalization.scale must be a non-zero number"),
        (_edit("out", "waypoints", shape=(1, 8, 2)), CAMERA, r"output 'waypoints' must have shape \(1, 6, 2\) \(K=6"),
        (_edit("out", "target_speed", drop=True), CAMERA, "missing model output 'target_speed'"),
        (
            manifest_tensors(STATE, STATS),
            REAL,
            "model input 'route_target' but the observation spec has route_source: none",
        ),
        ((manifest_tensors(REAL, STATS)[0], []), REAL, "missing model output 'waypoints'"),
        (
            (
                [t for t in manifest_tensors(REAL, STATS)[0] if t.name != "ego_history"],
                manifest_tensors(REAL, STATS)[1],
            ),
            REAL,
            "missing model input 'ego_history' \\(the observation spec has ego_history_steps: 3\\)",
        ),
        (
            _edit_real("ego_history", normalization={"mean": [0.0] * 12, "std": [1.0] * 12}),
            REAL,
            "ego_history.normalization.mean must be a list of 3 x 4 numbers",
        ),
        (_edit_real("ego_history", shape=(1, 4, 4)), REAL, r"input 'ego_history' must have shape \(1, 3, 4\) \(P=3"),
    ],
)
def test_model_io_against_the_table(
    tensors: tuple[list[TensorSpec], list[TensorSpec]], obs: ObservationSpec, message: str
) -> None:
    with pytest.raises(BundleError, match=message) as err:
        check_model_io(*tensors, obs, "b/manifest.json")
    assert str(err.value).startswith("b/manifest.json: ") and "\n" not in str(err.value)


def test_an_extra_output_is_allowed() -> None:
    inputs, outputs = manifest_tensors(CAMERA, STATS)
    check_model_io(inputs, (*outputs, TensorSpec("uncertainty", (1, 6))), CAMERA, "m")
