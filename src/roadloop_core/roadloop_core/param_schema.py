"""The parameter schema: every field of a config dataclass says its type, unit, range and meaning, once.

    @dataclass(frozen=True)
    class ControllerConfig:
        kp: Annotated[float, Param("speed PID proportional gain", unit="1/s", range=(0.0, 20.0))]

A field without a default is required; one with a default is optional (the dataclass default
is the only place that value is written). Nested config dataclasses become dotted names, as a
ROS 2 params file nests them (`controller: {kp: 0.8}` is the parameter `controller.kp`).

The types are ROS 2 parameter types, with ROS's rules, so a params file that loads here loads
on the car: `float` is a double (a YAML `30` is an integer there, so it is refused here too),
`int` an integer, `bool`, `str`, and `list[str]` a string array. Numbers are finite and inside
their `range` (inclusive, as rcl_interfaces FloatingPointRange/IntegerRange are).

    schema(cls)                          dotted name -> ParamSpec (type, unit, range, default, ...)
    check_fields(self)                   in `__post_init__`: a config built in code obeys the schema too
    validate_parameter(cls, name, value) None, or "name: why" (what a set_parameters callback answers)
    build_params(cls, values, where)     the typed config from dotted values (refuses unknown/missing)
    with_parameters(config, changes, where)  a copy with some values changed, re-validated as a whole
    load_node_params(path, node, cls)    `<node>: ros__parameters:` plus the file's `/**:` section
"""

from __future__ import annotations

import dataclasses
import math
import typing
from collections.abc import Mapping
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any, TypeVar

from roadloop_core.config import dataclass_from_dict, dataclass_to_dict, load_yaml
from roadloop_core.errors import ConfigError

__all__ = [
    "WILDCARD",
    "Param",
    "ParamSpec",
    "ParamType",
    "build_params",
    "check_fields",
    "check_value",
    "flatten_params",
    "flatten_yaml",
    "load_node_params",
    "node_sections",
    "schema",
    "show_value",
    "unflatten",
    "validate_parameter",
    "with_parameters",
]

T = TypeVar("T")

WILDCARD = "/**"  # the params-file section every node reads (ROS 2 wildcard node name)


class ParamType(str, Enum):
    """ROS 2 parameter types (the member names are rclpy's `Parameter.Type` names)."""

    BOOL = "bool"
    INTEGER = "integer"
    DOUBLE = "double"
    STRING = "string"
    STRING_ARRAY = "string_array"


@dataclass(frozen=True)
class Param:
    """What a config field means: written as `Annotated[<type>, Param(...)]` on the field.

    `range` is the physically sensible interval (inclusive, finite): a value outside it is
    a typo or a unit mistake, never a tuning choice. `live` says the component can take a
    new value between two frames, so a `set_parameters` callback may apply it; every other
    parameter is declared read-only to ROS (the node reads it once, at start).
    """

    doc: str
    unit: str = ""
    range: tuple[float, float] | None = None
    choices: tuple[str, ...] = ()
    live: bool = False

    def __post_init__(self) -> None:
        if self.range is not None:
            lo, hi = self.range
            if not (math.isfinite(lo) and math.isfinite(hi) and lo <= hi):
                raise ValueError(f"Param range {self.range} must be finite with low <= high")


_REQUIRED: Any = dataclasses.MISSING


@dataclass(frozen=True)
class ParamSpec:
    """One declared parameter: its dotted name, ROS type, schema and default (if optional)."""

    name: str
    type: ParamType
    param: Param
    default: Any = _REQUIRED

    @property
    def required(self) -> bool:
        return self.default is _REQUIRED

    @property
    def description(self) -> str:
        return f"{self.param.doc} [{self.param.unit}]" if self.param.unit else self.param.doc

    @property
    def constraints(self) -> str:
        """The value rule in words (ROS ParameterDescriptor.additional_constraints)."""
        p = self.param
        if p.choices:
            return ("each one of: " if self.type is ParamType.STRING_ARRAY else "one of: ") + ", ".join(p.choices)
        if p.range is not None:
            unit = f" {p.unit}" if p.unit else ""
            finite = "finite, " if self.type is ParamType.DOUBLE else ""
            return f"{finite}in [{p.range[0]:g}, {p.range[1]:g}]{unit}"
        return ""


def _param_type(tp: Any, where: str) -> ParamType:
    if tp is bool:
        return ParamType.BOOL
    if tp is int:
        return ParamType.INTEGER
    if tp is float:
        return ParamType.DOUBLE
    if tp is str:
        return ParamType.STRING
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (list, tuple) and args and args[0] is str and (origin is list or args[1:] in ((), (Ellipsis,))):
        return ParamType.STRING_ARRAY
    raise TypeError(f"{where}: {tp!r} is no ROS 2 parameter type (bool, int, float, str, list[str])")


_SCHEMAS: dict[type[Any], dict[str, ParamSpec]] = {}


def schema(cls: type[Any]) -> dict[str, ParamSpec]:
    """Every parameter of config dataclass `cls`, dotted, in field order.

    A TypeError names a field without a `Param`, a type ROS 2 parameters cannot hold, a number
    without a range or choices on something that is not a string: the schema is complete or
    the program does not start.
    """
    if cls not in _SCHEMAS:
        _SCHEMAS[cls] = _schema(cls)
    return _SCHEMAS[cls]


def _schema(cls: type[Any]) -> dict[str, ParamSpec]:
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"{cls!r} is not a dataclass")
    hints = typing.get_type_hints(cls, include_extras=True)
    out: dict[str, ParamSpec] = {}
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        where = f"{cls.__name__}.{f.name}"
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            for name, spec in schema(tp).items():
                out[f"{f.name}.{name}"] = dataclasses.replace(spec, name=f"{f.name}.{name}")
            continue
        params = [m for m in getattr(tp, "__metadata__", ()) if isinstance(m, Param)]
        if len(params) != 1:
            raise TypeError(f"{where}: needs exactly one Param(...) in Annotated[type, Param(...)]")
        ptype = _param_type(typing.get_args(tp)[0], where)
        p = params[0]
        if ptype in (ParamType.INTEGER, ParamType.DOUBLE) and p.range is None:
            raise TypeError(f"{where}: a number needs its physical range=(low, high)")
        if p.choices and ptype not in (ParamType.STRING, ParamType.STRING_ARRAY):
            raise TypeError(f"{where}: choices are for strings")
        if f.default is not dataclasses.MISSING:
            default: Any = f.default
        elif f.default_factory is not dataclasses.MISSING:
            default = f.default_factory()
        else:
            default = _REQUIRED
        spec = ParamSpec(f.name, ptype, p, default)
        if not spec.required:
            reason = check_value(spec, list(default) if isinstance(default, tuple) else default)
            if reason is not None:
                raise TypeError(f"{where}: default {reason}")
        out[f.name] = spec
    return out


def show_value(value: Any) -> str:
    """A value as the params file spells it (`.inf`, `.nan`, `30.0`, `'cpu'`)."""
    if isinstance(value, float) and not math.isfinite(value):
        return ".nan" if math.isnan(value) else (".inf" if value > 0 else "-.inf")
    return repr(value)


def check_value(spec: ParamSpec, value: Any) -> str | None:
    """Why `value` is not acceptable for `spec` (None: it is). The one rule of every path."""
    p, t, shown = spec.param, spec.type, show_value(value)
    if t is ParamType.BOOL:
        return None if isinstance(value, bool) else f"{shown} is not true/false"
    if t is ParamType.STRING:
        if not isinstance(value, str):
            return f"{shown} is not a string"
        if p.choices and value not in p.choices:
            return f"{shown} is not one of {', '.join(p.choices)}"
        return None
    if t is ParamType.STRING_ARRAY:
        if not isinstance(value, (list, tuple)) or not all(isinstance(v, str) for v in value):
            return f"{shown} is not a list of strings"
        bad = [v for v in value if p.choices and v not in p.choices]
        return f"{bad[0]!r} is not one of {', '.join(p.choices)}" if bad else None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return f"{shown} is not {'an integer' if t is ParamType.INTEGER else 'a number'}"
    if t is ParamType.INTEGER and not isinstance(value, int):
        return f"{shown} is not an integer"
    if t is ParamType.DOUBLE and isinstance(value, int):
        return f"{shown} is an integer; write {value}.0 (ROS 2 types this parameter as a double)"
    if not math.isfinite(value):
        return f"{shown} is not finite"
    if p.range is not None and not p.range[0] <= value <= p.range[1]:
        unit = f" {p.unit}" if p.unit else ""
        return f"{shown} is outside [{p.range[0]:g}, {p.range[1]:g}]{unit}"
    return None


def check_fields(config: Any) -> None:
    """ValueError unless every own (non-nested) field of `config` obeys its Param: call it in `__post_init__`.

    So a config built in code (`dataclasses.replace`, a test) holds the same guarantees as one loaded
    from a file; nested configs check themselves.
    """
    for name, spec in schema(type(config)).items():
        if "." not in name:
            reason = check_value(spec, getattr(config, name))
            if reason is not None:
                raise ValueError(f"{name}: {reason}")


def validate_parameter(cls: type[Any], name: str, value: Any) -> str | None:
    """None when `value` is acceptable for parameter `name` of config `cls`, else "name: why".

    Checks the one value; rules between parameters (e.g. look-ahead min <= max) are checked
    when the whole config is built (`with_parameters`).
    """
    spec = schema(cls).get(name)
    if spec is None:
        return f"{name}: not a parameter of {cls.__name__}"
    reason = check_value(spec, value)
    return None if reason is None else f"{name}: {reason}"


def flatten_yaml(tree: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted names of a `ros__parameters:` mapping (lists are values, mappings nest)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(flatten_yaml(value, f"{prefix}{key}."))
        else:
            out[prefix + str(key)] = value
    return out


def unflatten(values: Mapping[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in values.items():
        node = tree
        *parents, leaf = name.split(".")
        for part in parents:
            node = node.setdefault(part, {})
        node[leaf] = value
    return tree


def flatten_params(config: Any) -> dict[str, Any]:
    """Dotted name -> value of a config dataclass instance (tuples as lists, as ROS holds arrays)."""
    return flatten_yaml(dataclass_to_dict(config))


def build_params(cls: type[T], values: Mapping[str, Any], where: str, *, missing_hint: str = "") -> T:
    """The typed config `cls` from dotted `values`; a bad, unknown or missing one is one ConfigError.

    Errors read `<where>.<dotted name>: <why>`; rules between parameters (`__post_init__`) read
    `<where>.<section>: <why>`.
    """
    specs = schema(cls)
    unknown = sorted(set(values) - set(specs))
    if unknown:
        raise ConfigError(f"{where}.{unknown[0]}: not a parameter of {cls.__name__}")
    for name, spec in specs.items():
        if name not in values:
            if spec.required:
                raise ConfigError(f"{where}.{name}: required, not set{missing_hint}")
            continue
        reason = check_value(spec, values[name])
        if reason is not None:
            raise ConfigError(f"{where}.{name}: {reason}")
    full = {name: values.get(name, spec.default) for name, spec in specs.items()}
    return dataclass_from_dict(cls, unflatten(full), where)


def with_parameters(config: T, changes: Mapping[str, Any], where: str) -> T:
    """A copy of `config` with `changes` (dotted names) applied, validated value by value and as a whole."""
    return build_params(type(config), {**flatten_params(config), **changes}, where)


def node_sections(path: Path, data: Mapping[str, Any] | None = None) -> dict[str, dict[str, Any]]:
    """Section name (`drive_node`, `/**`, ...) -> its flattened `ros__parameters` in a ROS 2 params file."""
    data = load_yaml(path) if data is None else data
    out: dict[str, dict[str, Any]] = {}
    for key, body in data.items():
        params = body.get("ros__parameters") if isinstance(body, Mapping) else None
        if not isinstance(params, Mapping):
            raise ConfigError(f"{path}: {key}: expected 'ros__parameters:' under the node name")
        node = str(key)
        out[node[1:] if node.startswith("/") and node != WILDCARD else node] = flatten_yaml(params)
    return out


def load_node_params(path: Path, node: str, cls: type[T]) -> T:
    """Config `cls` of `node` from a ROS 2 params file: its own section plus the `/**` section.

    A value the wildcard section gives may not be set again in the node's section (a value is
    written once); wildcard keys this node does not declare are ignored, as ROS 2 ignores them.
    An error names the file, the section and the dotted parameter.
    """
    sections = node_sections(path)
    if node not in sections:
        raise ConfigError(f"{path}: no '{node}: ros__parameters:' section")
    own, shared = sections[node], sections.get(WILDCARD, {})
    specs = schema(cls)
    values: dict[str, Any] = {}
    for name, value in shared.items():
        if name in own:
            raise ConfigError(f"{path}: {node}.{name}: also set under {WILDCARD} (a value is written once)")
        if name in specs:
            reason = check_value(specs[name], value)
            if reason is not None:
                raise ConfigError(f"{path}: {WILDCARD}.{name}: {reason}")
            values[name] = value
    values.update(own)
    return build_params(cls, values, f"{path}: {node}", missing_hint=f" (add it under {node} or {WILDCARD})")
