"""The onboard parameters: one schema, every value in config/vehicle.yaml once, bad values refused in one line."""

from __future__ import annotations

from pathlib import Path

import pytest

from roadloop_core.cli import main
from roadloop_core.config import config_dir
from roadloop_core.param_schema import WILDCARD, node_sections, schema
from roadloop_vehicle.nodes import NODE_PARAMS
from roadloop_vehicle.params import load_vehicle_params

VEHICLE_YAML = config_dir() / "vehicle.yaml"


@pytest.mark.parametrize("node", sorted(NODE_PARAMS))
def test_every_parameter_has_a_schema_and_the_code_no_default(node: str) -> None:
    """The code says what a parameter is (type, unit, range, meaning), the params file what it is set to:
    a default in the code would be a second place a value is written."""
    specs = schema(NODE_PARAMS[node])  # a field without Param(...) or a number without a range fails here
    assert specs
    with_default = [name for name, spec in specs.items() if not spec.required]
    assert not with_default, f"{node}: defaults in the code for {with_default}; the value belongs in vehicle.yaml"
    assert all(spec.param.doc for spec in specs.values())


def test_both_nodes_read_the_same_vehicle_limits_from_the_shared_section() -> None:
    params = load_vehicle_params(VEHICLE_YAML)
    assert params.drive.vehicle_limits == params.safety.vehicle_limits
    shared = node_sections(VEHICLE_YAML)[WILDCARD]
    assert {n for n in shared if n.startswith("vehicle_limits.")} == {
        f"vehicle_limits.{n}" for n in schema(type(params.drive.vehicle_limits))
    }
    assert params.drive.controller.max_braking_mps2 <= params.drive.vehicle_limits.max_decel_mps2


def _edited(tmp_path: Path, old: str, new: str) -> Path:
    text = VEHICLE_YAML.read_text()
    assert text.count(old) == 1, old
    path = tmp_path / "vehicle.yaml"
    path.write_text(text.replace(old, new))
    return path


@pytest.mark.parametrize(
    ("old", "new", "message"),
    [
        ("max_speed_mps: 30.0", "max_speed_mps: .inf", "/**.vehicle_limits.max_speed_mps: .inf is not finite"),
        ("max_speed_mps: 30.0", "max_speed_mps: 1e9", "/**.vehicle_limits.max_speed_mps: 1000000000.0 is outside"),
        ("kp: 1.7", "kp: .nan", "drive_node.controller.kp: .nan is not finite"),
        (
            "nominal_dt_s: 0.1",
            "nominal_dt_s: 1.0e-12",
            "safety_node.safety.nominal_dt_s: 1e-12 is outside [0.001, 10] s",
        ),
        ("wheelbase_m: 2.7", "wheelbase_m: 3", "drive_node.controller.wheelbase_m: 3 is an integer; write 3.0"),
        ("recovery_frames: 10", "recovery_frames: ten", "safety_node.safety.recovery_frames: 'ten' is not an integer"),
        ("device: cpu", "device: gpu", "drive_node.runtime.device: 'gpu' is not one of cpu, cuda, auto"),
        ("      kd: 0.0\n", "", "drive_node.controller.kd: required, not set"),
        (
            "      kd: 0.0\n",
            "      kd: 0.0\n      kf: 1.0\n",
            "drive_node.controller.kf: not a parameter of DriveParams",
        ),
        (
            "    public_key: keys/signing.pub",
            "    public_key: keys/signing.pub\n    topics_config: topics.yaml",
            "drive_node.topics_config: also set under /** (a value is written once)",
        ),
        ("max_braking_mps2: 6.0", "max_braking_mps2: 9.0", "drive_node: controller.max_braking_mps2 9 exceeds"),
        (
            "lookahead_min_m: 3.0",
            "lookahead_min_m: 30.0",
            "drive_node.controller: need lookahead_min_m <= lookahead_max_m",
        ),
    ],
)
def test_a_bad_value_is_one_line_naming_file_node_and_parameter_exit_2(
    old: str, new: str, message: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _edited(tmp_path, old, new)
    args = ["replay", str(tmp_path / "bag"), "--bundle", str(tmp_path / "b"), "--out", str(tmp_path / "out")]
    with pytest.raises(SystemExit) as exc:
        main([*args, "--params", str(path)])
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"roadloop: error: {path}: {message}") and "\n" not in err, err


def test_the_real_log_car_has_a_complete_params_file_of_its_own(repo_root: Path) -> None:
    """config/real-log/vehicle.yaml (docs/real-logs.md): every parameter of config/vehicle.yaml, its own topics and
    observation spec (state-only, no route, the one its bundles are trained on) and a highway speed limit."""
    from dataclasses import asdict

    from roadloop_core.contract.observation import ObservationSpec
    from roadloop_vehicle.pipeline import load_observation_spec

    car = load_vehicle_params(repo_root / "config" / "real-log" / "vehicle.yaml")
    default = load_vehicle_params(repo_root / "config" / "vehicle.yaml")
    assert asdict(car.drive).keys() == asdict(default.drive).keys()
    spec = load_observation_spec(car)
    assert spec == ObservationSpec.from_config(repo_root / "config" / "real-log" / "dataset.yaml")
    assert (spec.camera, spec.route, spec.route_source) == (None, None, "none")
    assert car.path(car.drive.topics_config) == repo_root / "config" / "real-log" / "topics.yaml"
    assert car.drive.vehicle_limits.max_speed_mps == 36.0 and car.safety.safety.extra_monitored_roles == ["command_raw"]
