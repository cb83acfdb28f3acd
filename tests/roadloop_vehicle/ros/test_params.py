"""What the nodes declare to ROS 2: statically typed, no defaults, description, range and read_only from the schema."""

from __future__ import annotations

import importlib.util

import pytest

from roadloop_core.param_schema import schema
from roadloop_vehicle.nodes import NODE_PARAMS
from roadloop_vehicle.params import DriveParams, SafetyParams
from roadloop_vehicle.ros.params import Declaration, declarations


def by_name(cls: type) -> dict[str, Declaration]:
    return {d.name: d for d in declarations(cls)}


@pytest.mark.parametrize(
    ("cls", "name", "type_", "frange", "irange", "constraints"),
    [
        (DriveParams, "controller.kp", "DOUBLE", (0.0, 20.0), None, "finite, in [0, 20] (m/s²)/(m/s)"),
        (DriveParams, "vehicle_limits.max_speed_mps", "DOUBLE", (0.5, 70.0), None, "finite, in [0.5, 70] m/s"),
        (DriveParams, "runtime.intra_op_threads", "INTEGER", None, (0, 256), "in [0, 256] threads"),
        (DriveParams, "runtime.device", "STRING", None, None, "one of: cpu, cuda, auto"),
        (DriveParams, "bundle", "STRING", None, None, ""),
        (SafetyParams, "safety.recovery_frames", "INTEGER", None, (1, 10000), "in [1, 10000] frames"),
        (SafetyParams, "safety.extra_monitored_roles", "STRING_ARRAY", None, None, ""),
    ],
)
def test_declaration_carries_type_range_and_constraints(
    cls: type,
    name: str,
    type_: str,
    frange: tuple[float, float] | None,
    irange: tuple[int, int] | None,
    constraints: str,
) -> None:
    d = by_name(cls)[name]
    assert (d.type, d.floating_point_range, d.integer_range, d.additional_constraints) == (
        type_,
        frange,
        irange,
        constraints,
    )
    assert d.required and d.default is None  # statically typed without a value: the params file must set it
    assert d.read_only  # the nodes read their parameters once, at start
    assert d.description == schema(cls)[name].description and d.description


@pytest.mark.parametrize("node", sorted(NODE_PARAMS))
def test_every_number_is_declared_with_a_range(node: str) -> None:
    for d in declarations(NODE_PARAMS[node]):
        if d.type in ("DOUBLE", "INTEGER"):
            assert (d.floating_point_range or d.integer_range) is not None, d.name


def test_descriptor_is_an_rcl_interfaces_parameter_descriptor() -> None:
    if importlib.util.find_spec("rcl_interfaces") is None:
        pytest.skip("rcl_interfaces (ROS 2 message package) is not installed here: rclpy-intellisense ships rclpy only")
    from roadloop_vehicle.ros.adapter import descriptor

    desc = descriptor(by_name(DriveParams)["controller.kp"])
    assert desc.read_only and desc.floating_point_range[0].to_value == 20.0
    assert desc.description.startswith("speed PID proportional gain")
