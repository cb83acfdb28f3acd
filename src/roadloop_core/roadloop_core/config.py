"""Config loading: typed dataclasses filled from the YAML under `config/`.

Node parameters live in ROS 2 params files (`<node>: ros__parameters: {...}`), so
replay, simulation and the ROS 2 nodes read the very same values.
"""

from __future__ import annotations

import dataclasses
import os
import re
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import yaml

from roadloop_core.errors import ConfigError
from roadloop_core.fsio import read_regular_file

__all__ = ["MAX_CONFIG_BYTES", "config_dir", "dataclass_from_dict", "dataclass_to_dict", "load_params", "load_yaml"]

T = TypeVar("T")

_REPO_CONFIG = Path(__file__).resolve().parents[3] / "config"


def config_dir(installed: Path | None = None) -> Path:
    """Where `config/` lives: $ROADLOOP_CONFIG_DIR, the repository's `config/`, `installed` (an installed
    package's copy, e.g. share/roadloop_vehicle/config), or ./config."""
    env = os.environ.get("ROADLOOP_CONFIG_DIR")
    if env:
        return Path(env)
    if (_REPO_CONFIG / "topics.yaml").is_file():
        return _REPO_CONFIG
    if installed is not None and (installed / "topics.yaml").is_file():
        return installed
    return Path.cwd() / "config"


class _Loader(yaml.SafeLoader):
    """YAML 1.2 numbers: PyYAML (YAML 1.1) reads `1e-4` and `1.0e9` as strings; ROS 2's params parser
    and YAML 1.2 read them as floats, and so do we, so a file means the same here and on the car."""


_Loader.add_implicit_resolver(
    "tag:yaml.org,2002:float",
    re.compile(r"^[-+]?(?:[0-9][0-9_]*(?:\.[0-9_]*)?|\.[0-9_]+)[eE][-+]?[0-9]+$"),
    list("-+0123456789."),
)
MAX_CONFIG_BYTES = 16 << 20  # a config file is a few KiB; anything this large is not one


def load_yaml(path: Path) -> dict[str, Any]:
    """Read a YAML mapping; any fault (missing, folder/FIFO/device, binary, bad YAML) is one ConfigError naming it."""
    try:
        raw = read_regular_file(path, MAX_CONFIG_BYTES)
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file") from None
    except OSError as err:
        raise ConfigError(f"{path}: cannot read the config file: {err.strerror or err}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as err:
        bad = raw[err.start]
        raise ConfigError(f"{path}: not a YAML text file (not UTF-8: byte {err.start} is {bad:#04x})") from None
    try:
        data = yaml.load(text, Loader=_Loader)  # a SafeLoader: no arbitrary objects
    except yaml.YAMLError as err:
        raise ConfigError(f"{path}: invalid YAML: {str(err).splitlines()[0]}") from err
    except RecursionError:
        raise ConfigError(f"{path}: invalid YAML: nested too deeply") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping at the top level")
    return data


def load_params(path: Path, node: str, cls: type[T]) -> T:
    """Fill dataclass `cls` from `<node>: ros__parameters:` in a ROS 2 params file."""
    data = load_yaml(path)
    section = data.get(node, data.get(f"/{node}"))
    if not isinstance(section, dict) or not isinstance(section.get("ros__parameters"), dict):
        raise ConfigError(f"{path}: no '{node}: ros__parameters:' section")
    return dataclass_from_dict(cls, section["ros__parameters"], f"{path}: {node}")


def _coerce(tp: Any, value: Any, where: str) -> Any:
    origin = typing.get_origin(tp)
    args = typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, where)
    if dataclasses.is_dataclass(tp) and isinstance(tp, type):
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping")
        return dataclass_from_dict(tp, value, where)
    if origin in (list, tuple):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {value!r}")
        item = args[0] if args else Any
        items = [_coerce(item, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{where}: expected a mapping, got {value!r}")
        return dict(value)
    if tp is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {value!r}")
        return float(value)
    if tp is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {value!r}")
        return value
    if tp is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true/false, got {value!r}")
        return value
    if tp is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {value!r}")
        return value
    if isinstance(tp, type) and issubclass(tp, Path):
        return Path(str(value))
    return value


def dataclass_from_dict(cls: type[T], data: dict[str, Any], where: str = "config") -> T:
    """Build `cls` from `data`: unknown keys and ill-typed values are ConfigErrors naming the field."""
    if not (dataclasses.is_dataclass(cls) and isinstance(cls, type)):
        raise TypeError(f"{cls} is not a dataclass")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = sorted(set(data) - set(fields))
    if unknown:
        raise ConfigError(f"{where}: unknown parameter(s) {', '.join(unknown)}; known: {', '.join(fields)}")
    kwargs = {name: _coerce(hints[name], value, f"{where}.{name}") for name, value in data.items()}
    try:
        return cls(**kwargs)
    except TypeError as err:
        raise ConfigError(f"{where}: {err}") from None
    except ValueError as err:
        raise ConfigError(f"{where}: {err}") from None


def dataclass_to_dict(obj: Any) -> dict[str, Any]:
    """The plain-YAML/JSON form of a config dataclass (tuples become lists, Paths strings)."""

    def plain(v: Any) -> Any:
        if isinstance(v, (list, tuple)):
            return [plain(x) for x in v]
        if isinstance(v, dict):
            return {k: plain(x) for k, x in v.items()}
        if isinstance(v, Path):
            return str(v)
        return v

    return {k: plain(v) for k, v in dataclasses.asdict(obj).items()}
