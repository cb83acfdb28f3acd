"""Config loading: typed dataclasses from YAML, errors naming the file and the field."""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from roadloop_core.config import config_dir, dataclass_from_dict, dataclass_to_dict, load_params, load_yaml
from roadloop_core.errors import ConfigError


@dataclass
class Inner:
    gain: float = 1.0


@dataclass
class Params:
    rate_hz: float = 10.0
    name: str = "node"
    enabled: bool = True
    count: int = 3
    limits: list[float] = field(default_factory=lambda: [1.0, 2.0])
    shape: tuple[int, ...] = (1, 2)
    inner: Inner = field(default_factory=Inner)
    out: Path | None = None
    extra: dict[str, Any] = field(default_factory=dict)


GOOD = [
    ({}, Params()),
    ({"rate_hz": 5}, Params(rate_hz=5.0)),
    ({"inner": {"gain": 2}}, Params(inner=Inner(2.0))),
    ({"shape": [3, 4]}, Params(shape=(3, 4))),
    ({"out": "x/y"}, Params(out=Path("x/y"))),
    ({"out": None}, Params(out=None)),
    ({"extra": {"a": 1}}, Params(extra={"a": 1})),
]


@pytest.mark.parametrize(("data", "expected"), GOOD)
def test_accepted_values(data: dict[str, Any], expected: Params) -> None:
    assert dataclass_from_dict(Params, data) == expected


BAD = [
    ({"nope": 1}, "unknown parameter(s) nope"),
    ({"rate_hz": "fast"}, "where.rate_hz: expected a number"),
    ({"rate_hz": True}, "where.rate_hz: expected a number"),
    ({"count": 2.5}, "where.count: expected an integer"),
    ({"enabled": "yes"}, "where.enabled: expected true/false"),
    ({"name": 3}, "where.name: expected a string"),
    ({"limits": 3}, "where.limits: expected a list"),
    ({"limits": [1, "x"]}, "where.limits[1]: expected a number"),
    ({"inner": 3}, "where.inner: expected a mapping"),
    ({"inner": {"gain": "x"}}, "where.inner.gain: expected a number"),
    ({"extra": []}, "where.extra: expected a mapping"),
]


@pytest.mark.parametrize(("data", "fault"), BAD)
def test_rejected_values_name_the_field(data: dict[str, Any], fault: str) -> None:
    with pytest.raises(ConfigError) as err:
        dataclass_from_dict(Params, data, "where")
    assert fault in str(err.value)


def test_round_trip_to_plain_dict() -> None:
    p = Params(out=Path("a"), shape=(5,))
    plain = dataclass_to_dict(p)
    assert plain["out"] == "a" and plain["shape"] == [5]
    assert dataclass_from_dict(Params, plain) == p


@pytest.mark.parametrize(
    ("text", "fault"),
    [("a: [", "invalid YAML"), ("- 1\n- 2\n", "expected a mapping at the top level")],
)
def test_load_yaml_errors(tmp_path: Path, text: str, fault: str) -> None:
    path = tmp_path / "c.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match=fault):
        load_yaml(path)
    with pytest.raises(ConfigError, match="no such config file"):
        load_yaml(tmp_path / "missing.yaml")
    (tmp_path / "empty.yaml").write_text("")
    assert load_yaml(tmp_path / "empty.yaml") == {}


def test_load_params_reads_ros2_params_files(tmp_path: Path) -> None:
    path = tmp_path / "p.yaml"
    path.write_text("drive_node:\n  ros__parameters:\n    rate_hz: 20.0\n    inner: {gain: 0.5}\n")
    assert load_params(path, "drive_node", Params) == Params(rate_hz=20.0, inner=Inner(0.5))
    with pytest.raises(ConfigError, match="no 'other: ros__parameters:' section"):
        load_params(path, "other", Params)


def test_config_dir_env_override(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert (config_dir() / "topics.yaml").is_file()
    monkeypatch.setenv("ROADLOOP_CONFIG_DIR", str(tmp_path))
    assert config_dir() == tmp_path


def test_every_shipped_params_file_parses() -> None:
    for path in sorted(config_dir().glob("*.yaml")):
        assert isinstance(load_yaml(path), dict)


def test_numbers_read_as_yaml_1_2_and_ros_2_read_them(tmp_path: Path) -> None:
    p = tmp_path / "n.yaml"
    p.write_text("a: [1e9, 1.0e9, 1e-12, -2.5E-3, 30, 30.0, .inf, 1e, abc]\n")
    assert load_yaml(p)["a"] == [1e9, 1e9, 1e-12, -2.5e-3, 30, 30.0, float("inf"), "1e", "abc"]


@pytest.mark.parametrize("kind", ["binary", "folder", "fifo", "device", "latin-1"])
def test_load_yaml_turns_every_unreadable_path_into_one_config_error(tmp_path: Path, kind: str) -> None:
    path = tmp_path / "cfg.yaml"
    if kind == "binary":
        path.write_bytes(bytes(range(256)) * 4)
    elif kind == "folder":
        path.mkdir()
    elif kind == "fifo":
        os.mkfifo(path)  # a blocking open would wait here for a writer forever
    elif kind == "device":
        path = Path("/dev/null")
    else:
        path.write_bytes("name: caf\xe9\n".encode("latin-1"))
    with pytest.raises(ConfigError) as err:
        load_yaml(path)
    assert str(err.value).startswith(f"{path}:") and "\n" not in str(err.value)
