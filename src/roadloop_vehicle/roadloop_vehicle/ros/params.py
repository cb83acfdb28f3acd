"""What a node declares to ROS 2 for its config dataclass, from the schema (no rclpy here).

Each parameter becomes one `Declaration`: dotted name, ROS type, default (None: required,
declared statically typed without a value, as Autoware declares its parameters), and the
`rcl_interfaces/ParameterDescriptor` fields: description (meaning and unit), additional
constraints in words, the range as FloatingPointRange/IntegerRange, read_only unless the
component takes a new value between frames. `ros/adapter.py` turns these into the rclpy
calls; keeping them plain data lets the launch/config checks and the tests read exactly
what the car declares.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from roadloop_core.param_schema import ParamSpec, ParamType, schema

__all__ = ["Declaration", "declarations", "parameter_names"]


@dataclass(frozen=True)
class Declaration:
    name: str
    type: str  # rclpy Parameter.Type member name: BOOL, INTEGER, DOUBLE, STRING, STRING_ARRAY
    default: Any  # None: required (statically typed, no value until a params file gives one)
    description: str
    additional_constraints: str
    read_only: bool
    floating_point_range: tuple[float, float] | None = None
    integer_range: tuple[int, int] | None = None

    @property
    def required(self) -> bool:
        return self.default is None


def _declaration(spec: ParamSpec) -> Declaration:
    p, t = spec.param, spec.type
    default: Any = None
    if not spec.required:  # in the type ROS infers it as: a float default 1 would declare an integer
        d = spec.default
        default = float(d) if t is ParamType.DOUBLE else list(d) if t is ParamType.STRING_ARRAY else d
    return Declaration(
        name=spec.name,
        type=t.name,
        default=default,
        description=spec.description,
        additional_constraints=spec.constraints,
        read_only=not p.live,
        floating_point_range=(float(p.range[0]), float(p.range[1])) if t is ParamType.DOUBLE and p.range else None,
        integer_range=(int(p.range[0]), int(p.range[1])) if t is ParamType.INTEGER and p.range else None,
    )


def declarations(cls: type[Any]) -> list[Declaration]:
    """Every parameter a node declares for config dataclass `cls`, in field order."""
    return [_declaration(spec) for spec in schema(cls).values()]


def parameter_names(cls: type[Any]) -> list[str]:
    """The dotted names a node declares for `cls`."""
    return list(schema(cls))
