"""ROS 2 parameters <-> config dataclasses (no rclpy here, so the launch/config checks run anywhere).

Nested dataclass fields become dotted parameter names, exactly as a ROS 2 params
YAML with nested mappings declares them (`controller: {kp: 0.8}` -> `controller.kp`).
"""

from __future__ import annotations

import dataclasses
import typing
from typing import Any, TypeVar

from roadloop_core.config import dataclass_from_dict, dataclass_to_dict

__all__ = ["flatten", "flatten_yaml", "parameter_names", "unflatten", "validated"]

T = TypeVar("T")


def parameter_names(cls: type[Any], prefix: str = "") -> list[str]:
    """Every parameter a node declares for config dataclass `cls`, dotted, in field order."""
    names: list[str] = []
    hints = typing.get_type_hints(cls)
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp) and isinstance(tp, type):
            names += parameter_names(tp, f"{prefix}{f.name}.")
        else:
            names.append(prefix + f.name)
    return names


def flatten(obj: Any) -> dict[str, Any]:
    """Dotted name -> default value of a config dataclass instance."""
    return flatten_yaml(dataclass_to_dict(obj))


def flatten_yaml(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Dotted names of a `ros__parameters:` mapping (lists are values, mappings nest)."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten_yaml(value, f"{prefix}{key}."))
        else:
            out[prefix + key] = value
    return out


def unflatten(values: dict[str, Any]) -> dict[str, Any]:
    tree: dict[str, Any] = {}
    for name, value in values.items():
        node = tree
        *parents, leaf = name.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return tree


def validated(cls: type[T], values: dict[str, Any], where: str) -> T:
    """The typed config from dotted parameter values; a bad value is one ConfigError naming it."""
    return dataclass_from_dict(cls, unflatten(values), where)
