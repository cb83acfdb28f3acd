"""`roadloop sim eval --driver bundle:PATH`: a signed bundle drives closed loop through the onboard pipeline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from roadloop_core.cli import main
from roadloop_core.config import config_dir
from roadloop_core.contract.observation import ObservationSpec
from tests.support.vehicle_fixtures import vehicle_config_dir, vehicle_fixtures

OBSERVATION = ObservationSpec.from_config(config_dir() / "dataset.yaml")


@pytest.fixture()
def vehicle_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Path, Path]:
    """A config folder as on a vehicle: the repository's YAML plus the trusted public key; a short scenario."""
    cfg, priv = vehicle_config_dir(tmp_path, max_duration_s=4.0)
    monkeypatch.setenv("ROADLOOP_CONFIG_DIR", str(cfg))
    return cfg, priv


def run_cli(args: list[str]) -> int:
    try:
        main(args)
    except SystemExit as exc:
        return int(exc.code or 0)
    return 0


@pytest.mark.slow
def test_bundle_driver_runs_and_scores(vehicle_config: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, priv = vehicle_config

    bundle = vehicle_fixtures().make_bundle(tmp_path / "tiny-v1", priv, observation=OBSERVATION)
    out = tmp_path / "report.json"
    args = ["sim", "eval", "--driver", f"bundle:{bundle}", "--episodes", "1", "--json", str(out)]
    assert run_cli([*args, "--scenarios-file", str(cfg / "scenarios.yaml")]) == 0
    summary = json.loads(out.read_text())["summary"]
    # the tiny policy heads for the route target: it drives on, off-road never, no invalid commands
    assert summary["infractions"] == {
        "collision_static": 0,
        "collision_vehicle": 0,
        "invalid_command": 0,
        "off_road": 0,
    }
    assert 0 < summary["route_completion"] <= 100 and summary["driving_score"] > 0


def test_bundle_driver_follows_the_route_and_publishes_its_plan(
    vehicle_config: tuple[Path, Path], tmp_path: Path
) -> None:
    cfg, priv = vehicle_config
    from roadloop_core.registry import load_registry
    from roadloop_sim.drivers import make_driver
    from roadloop_sim.episode import run_episode
    from roadloop_sim.highway import HighwayEnvSimulator
    from roadloop_sim.scenarios import load_scenarios
    from roadloop_vehicle.params import load_vehicle_params

    bundle = vehicle_fixtures().make_bundle(tmp_path / "tiny-v1", priv, observation=OBSERVATION)
    registry = load_registry(config_dir() / "topics.yaml")
    driver: Any = make_driver(f"bundle:{bundle}", registry, load_vehicle_params(cfg / "vehicle.yaml"))
    assert driver.name == "bundle:tiny-v1"
    scenarios = load_scenarios(cfg / "scenarios.yaml")
    sim = HighwayEnvSimulator(scenarios, registry)
    try:
        log = run_episode(
            sim, driver, "highway_light", 0, registry=registry, cfg=scenarios.simulation, driver_label=driver.name
        )
    finally:
        sim.close()
    reports = [r for r in driver.pipeline.reports if r.kind == "frame"]
    assert len(reports) >= 30  # 10 Hz policy frames over the 4 s episode
    assert all(r.model == "tiny-v1" for r in reports)
    assert {r.state.value for r in reports[1:]} == {"active"}, [r.faults for r in reports if r.faults][:3]
    assert driver.last_trajectory is not None and len(driver.last_trajectory.poses) == 8
    assert log.progress_m > 30


def test_tampered_bundle_is_refused_with_the_reason(vehicle_config: tuple[Path, Path], tmp_path: Path) -> None:
    cfg, priv = vehicle_config

    bundle = vehicle_fixtures().make_bundle(tmp_path / "tiny-v1", priv, observation=OBSERVATION)
    onnx = bundle / "policy.onnx"
    onnx.write_bytes(onnx.read_bytes()[:-1] + b"\x00")
    from roadloop_core.registry import load_registry
    from roadloop_sim.drivers import make_driver
    from roadloop_sim.errors import DriverError
    from roadloop_vehicle.params import load_vehicle_params

    with pytest.raises(DriverError, match=r"refused.*sha256"):
        make_driver(f"bundle:{bundle}", load_registry(cfg / "topics.yaml"), load_vehicle_params(cfg / "vehicle.yaml"))
