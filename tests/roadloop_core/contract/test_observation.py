"""ObservationSpec: the config section, the mapping round trip of index.json and manifest.json, differences."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.errors import ConfigError


def test_repository_config_loads(repo_root: Path) -> None:
    spec = ObservationSpec.from_config(repo_root / "config" / "dataset.yaml")
    assert spec.camera == "camera"
    assert ObservationSpec.from_dict(spec.to_dict(), complete=True) == spec  # the index/manifest round trip
    assert list(spec.to_dict()) == [f.name for f in dataclasses.fields(ObservationSpec)]  # written in field order


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"image_width": 0}, "image_width"),
        ({"sample_rate_hz": "fast"}, "sample_rate_hz: expected a number"),
        ({"lookahead": 3}, "unknown parameter"),
        ({"route_max_age_s": -1.0}, "route_max_age_s"),
        ({"route": None}, "route is null but route_source is topic: name the route role, or set route_source: none"),
        ({"route_source": "none"}, "route_source is none but route names the role 'route': set route: null"),
        ({"route_source": "planner"}, "route_source must be one of topic, hindsight, none"),
        ({"imu_frame": "ned"}, "imu_frame must be one of flu, frd"),
        ({"imu_accel_unit": "ft/s2"}, "imu_accel_unit must be one of mps2, g"),
        ({"imu_aggregate": "max"}, "imu_aggregate must be one of latest, mean, median"),
        ({"ego_history_steps": 30}, "ego history spans 6.2 s; at most 5 s"),
        ({"ego_history_steps": -1}, "ego_history_steps must be >= 0"),
    ],
)
def test_bad_values_name_the_field(patch: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ObservationSpec.from_dict({**ObservationSpec().to_dict(), **patch})


def test_state_only() -> None:
    spec = ObservationSpec(camera=None)
    assert spec.state_only
    assert spec.roles() == ["imu", "odometry", "route"]


@pytest.mark.parametrize(
    ("route", "source", "builder", "onboard"),
    [
        ("route", "topic", ["imu", "odometry", "route"], ["imu", "odometry", "route"]),
        ("route", "hindsight", ["imu", "odometry"], ["imu", "odometry", "route"]),  # the car feeds a planner's route
        (None, "hindsight", ["imu", "odometry"], ["imu", "odometry"]),
        (None, "none", ["imu", "odometry"], ["imu", "odometry"]),
    ],
)
def test_route_sources_and_the_roles_read(
    route: str | None, source: str, builder: list[str], onboard: list[str]
) -> None:
    spec = ObservationSpec(camera=None, route=route, route_source=source)
    assert spec.roles() == builder
    assert spec.roles(onboard=True) == onboard


def test_specs_written_before_the_newer_fields_read_with_the_earlier_behaviour() -> None:
    old = {k: v for k, v in ObservationSpec().to_dict().items()
           if k not in ("route_source", "imu_frame", "imu_accel_unit", "imu_aggregate", "odometry_yaw_offset_deg",
                        "ego_history_steps", "ego_history_dt_s")}  # fmt: skip
    spec = ObservationSpec.from_dict(old, "index.json: observation", complete=True)
    assert (spec.route_source, spec.imu_aggregate, spec.ego_history_steps) == ("topic", "latest", 0)


def test_missing_section(tmp_path: Path) -> None:
    p = tmp_path / "d.yaml"
    p.write_text("build: {}\n")
    with pytest.raises(ConfigError, match="no 'observation:'"):
        ObservationSpec.from_config(p)


def test_a_written_spec_must_be_complete() -> None:
    partial = ObservationSpec().to_dict()
    del partial["label_dt_s"], partial["route"]
    assert ObservationSpec.from_dict(partial).label_dt_s == 0.5  # a config may leave fields to their defaults
    with pytest.raises(ConfigError, match=r"manifest.json: observation: missing field\(s\) route, label_dt_s"):
        ObservationSpec.from_dict(partial, "manifest.json: observation", complete=True)
    with pytest.raises(ConfigError, match="expected a mapping"):
        ObservationSpec.from_dict([], "x")  # type: ignore[arg-type]


def test_differences_name_each_field() -> None:
    a = ObservationSpec()
    b = dataclasses.replace(a, image_width=96, camera=None)
    assert a.differences(a) == []
    assert a.differences(b) == [("camera", "camera", None), ("image_width", 64, 96)]
