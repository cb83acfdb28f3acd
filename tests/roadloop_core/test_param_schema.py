"""The parameter schema: the one value rule (table), schema completeness, params files with `/**`."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

import pytest

from roadloop_core.errors import ConfigError
from roadloop_core.param_schema import (
    Param,
    ParamType,
    build_params,
    check_fields,
    load_node_params,
    schema,
    show_value,
    validate_parameter,
    with_parameters,
)


@dataclass(frozen=True)
class Wheel:
    radius_m: Annotated[float, Param("wheel radius", unit="m", range=(0.1, 2.0))]
    count: Annotated[int, Param("wheels on the axle", range=(1, 4))] = 2

    def __post_init__(self) -> None:
        check_fields(self)


@dataclass(frozen=True)
class Car:
    name: Annotated[str, Param("what the car is called")]
    mode: Annotated[str, Param("how it drives", choices=("auto", "manual"))]
    lidar: Annotated[bool, Param("has a lidar")]
    sensors: Annotated[list[str], Param("sensor roles", choices=("camera", "imu", "gnss"))]
    front: Wheel
    max_speed_mps: Annotated[float, Param("top speed", unit="m/s", range=(0.5, 70.0))] = 30.0
    tags: Annotated[list[str], Param("free tags")] = field(default_factory=list)

    def __post_init__(self) -> None:
        check_fields(self)
        if self.mode == "manual" and self.lidar:
            raise ValueError("a manual car has no lidar")


GOOD = {
    "name": "c1",
    "mode": "auto",
    "lidar": True,
    "sensors": ["camera", "imu"],
    "front.radius_m": 0.35,
}


def test_schema_flattens_nested_configs_with_types_and_defaults() -> None:
    s = schema(Car)
    assert list(s) == [
        "name",
        "mode",
        "lidar",
        "sensors",
        "front.radius_m",
        "front.count",
        "max_speed_mps",
        "tags",
    ]
    assert [s[n].type for n in ("name", "lidar", "sensors", "front.count", "max_speed_mps")] == [
        ParamType.STRING,
        ParamType.BOOL,
        ParamType.STRING_ARRAY,
        ParamType.INTEGER,
        ParamType.DOUBLE,
    ]
    assert s["name"].required and not s["max_speed_mps"].required and s["max_speed_mps"].default == 30.0
    assert s["tags"].default == [] and s["front.count"].default == 2
    assert s["max_speed_mps"].description == "top speed [m/s]"
    assert s["max_speed_mps"].constraints == "finite, in [0.5, 70] m/s"
    assert s["front.count"].constraints == "in [1, 4]"
    assert s["mode"].constraints == "one of: auto, manual"


@pytest.mark.parametrize(
    ("name", "value", "reason"),
    [
        ("max_speed_mps", 12.5, None),
        ("max_speed_mps", 70.0, None),  # bounds are inclusive, as in rcl_interfaces FloatingPointRange
        ("max_speed_mps", math.inf, ".inf is not finite"),
        ("max_speed_mps", -math.inf, "-.inf is not finite"),
        ("max_speed_mps", math.nan, ".nan is not finite"),
        ("max_speed_mps", 1e9, "1000000000.0 is outside [0.5, 70] m/s"),
        ("max_speed_mps", 1e-12, "1e-12 is outside [0.5, 70] m/s"),
        ("max_speed_mps", 30, "30 is an integer; write 30.0 (ROS 2 types this parameter as a double)"),
        ("max_speed_mps", True, "True is not a number"),
        ("max_speed_mps", "30", "'30' is not a number"),
        ("front.count", 3, None),
        ("front.count", 3.0, "3.0 is not an integer"),
        ("front.count", 0, "0 is outside [1, 4]"),
        ("front.count", False, "False is not an integer"),
        ("lidar", "yes", "'yes' is not true/false"),
        ("mode", "manual", None),
        ("mode", "sport", "'sport' is not one of auto, manual"),
        ("name", 7, "7 is not a string"),
        ("sensors", ["gnss"], None),
        ("sensors", ["radar"], "'radar' is not one of camera, imu, gnss"),
        ("sensors", "camera", "'camera' is not a list of strings"),
        ("tags", [1], "[1] is not a list of strings"),
        ("wheelbase_m", 2.7, "not a parameter of Car"),
    ],
)
def test_validate_parameter(name: str, value: Any, reason: str | None) -> None:
    got = validate_parameter(Car, name, value)
    assert got == (None if reason is None else f"{name}: {reason}")


def test_build_params_fills_defaults_and_names_what_is_wrong() -> None:
    car = build_params(Car, GOOD, "cars.yaml: car")
    assert car.max_speed_mps == 30.0 and car.front == Wheel(0.35, 2) and car.tags == []
    cases = [
        ({**GOOD, "front.radius_m": math.inf}, r"^cars\.yaml: car\.front\.radius_m: \.inf is not finite$"),
        ({k: v for k, v in GOOD.items() if k != "lidar"}, r"^cars\.yaml: car\.lidar: required, not set$"),
        ({**GOOD, "front.spokes": 5}, r"^cars\.yaml: car\.front\.spokes: not a parameter of Car$"),
        ({**GOOD, "mode": "manual"}, r"^cars\.yaml: car: a manual car has no lidar$"),  # a rule between fields
    ]
    for values, message in cases:
        with pytest.raises(ConfigError, match=message):
            build_params(Car, values, "cars.yaml: car")


def test_with_parameters_revalidates_the_whole_config() -> None:
    car = build_params(Car, GOOD, "car")
    assert with_parameters(car, {"max_speed_mps": 20.0}, "car").max_speed_mps == 20.0
    with pytest.raises(ConfigError, match=r"^car\.max_speed_mps: 1000\.0 is outside"):
        with_parameters(car, {"max_speed_mps": 1000.0}, "car")
    with pytest.raises(ConfigError, match="a manual car has no lidar"):
        with_parameters(car, {"mode": "manual"}, "car")


def test_a_config_built_in_code_obeys_the_schema_too() -> None:
    with pytest.raises(ValueError, match=r"radius_m: 9\.0 is outside \[0\.1, 2\] m"):
        Wheel(9.0)


@dataclass(frozen=True)
class NoParam:
    x: float


@dataclass(frozen=True)
class NoRange:
    x: Annotated[float, Param("x")]


@dataclass(frozen=True)
class NotRos:
    x: Annotated[dict[str, int], Param("x")]


@dataclass(frozen=True)
class BadDefault:
    x: Annotated[float, Param("x", range=(0.0, 1.0))] = 5.0


@pytest.mark.parametrize(
    ("cls", "message"),
    [
        (NoParam, r"NoParam\.x: needs exactly one Param"),
        (NoRange, r"NoRange\.x: a number needs its physical range"),
        (NotRos, r"NotRos\.x: .* is no ROS 2 parameter type"),
        (BadDefault, r"BadDefault\.x: default 5\.0 is outside \[0, 1\]"),
    ],
)
def test_an_incomplete_schema_does_not_load(cls: type, message: str) -> None:
    with pytest.raises(TypeError, match=message):
        schema(cls)


def test_a_range_must_be_finite() -> None:
    with pytest.raises(ValueError, match="finite"):
        Param("x", range=(0.0, math.inf))


def test_show_value_spells_values_as_yaml_does() -> None:
    assert [show_value(v) for v in (math.inf, -math.inf, math.nan, 1.5, "a")] == [".inf", "-.inf", ".nan", "1.5", "'a'"]


def _file(tmp_path: Path, text: str) -> Path:
    p = tmp_path / "cars.yaml"
    p.write_text(text)
    return p


SHARED = """
/**:
  ros__parameters:
    front: {radius_m: 0.35}
    max_speed_mps: 25.0
    unrelated: 1
car:
  ros__parameters:
    name: c1
    mode: auto
    lidar: false
    sensors: [camera]
"""


def test_params_file_merges_the_wildcard_section(tmp_path: Path) -> None:
    car = load_node_params(_file(tmp_path, SHARED), "car", Car)
    assert car.front.radius_m == 0.35 and car.max_speed_mps == 25.0  # `unrelated` is not Car's: ignored, as ROS does


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            SHARED.replace("max_speed_mps: 25.0", "max_speed_mps: .inf"),
            r"cars\.yaml: /\*\*\.max_speed_mps: \.inf is not",
        ),
        (SHARED + "    max_speed_mps: 20.0\n", r"cars\.yaml: car\.max_speed_mps: also set under /\*\*"),
        (
            SHARED.replace("    lidar: false\n", ""),
            r"cars\.yaml: car\.lidar: required, not set \(add it under car or /\*\*\)",
        ),
        (SHARED.replace("mode: auto", "mode: 7"), r"cars\.yaml: car\.mode: 7 is not a string$"),
        (SHARED.replace("car:", "truck:"), r"cars\.yaml: no 'car: ros__parameters:' section"),
        (SHARED + "bus: 3\n", r"cars\.yaml: bus: expected 'ros__parameters:'"),
    ],
)
def test_params_file_errors_name_file_section_and_parameter(tmp_path: Path, text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_node_params(_file(tmp_path, text), "car", Car)
