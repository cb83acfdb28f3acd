"""Fixtures of the over-ROS tests: a vehicle's config folder with its trusted key, and a bundle signed with it."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
import yaml

from roadloop_core.config import config_dir
from roadloop_core.contract.observation import ObservationSpec
from tests.support.vehicle_fixtures import vehicle_fixtures

REPO = Path(__file__).resolve().parents[3]


@pytest.fixture()
def vehicle_config(tmp_path: Path) -> tuple[Path, Path]:
    """A config folder as on a vehicle (the repository's YAML + the trusted key), one short scenario; a bundle."""
    fx = vehicle_fixtures()
    cfg = tmp_path / "config"
    shutil.copytree(REPO / "config", cfg)
    priv, _ = fx.keys(cfg / "keys")  # config/vehicle.yaml: public_key keys/signing.pub
    scen = yaml.safe_load((cfg / "scenarios.yaml").read_text())
    scen["scenarios"] = {"highway_light": {**scen["scenarios"]["highway_light"], "max_duration_s": 3.0}}
    (cfg / "scenarios.yaml").write_text(yaml.safe_dump(scen))
    observation = ObservationSpec.from_config(config_dir() / "dataset.yaml")
    bundle = fx.make_bundle(tmp_path / "tiny-v1", priv, observation=observation)
    return cfg, bundle
