"""Fixtures of the over-ROS tests: a vehicle's config folder with its trusted key, and a bundle signed with it."""

from __future__ import annotations

from pathlib import Path

import pytest

from roadloop_core.config import config_dir
from roadloop_core.contract.observation import ObservationSpec
from tests.support.vehicle_fixtures import vehicle_config_dir, vehicle_fixtures


@pytest.fixture()
def vehicle_config(tmp_path: Path) -> tuple[Path, Path]:
    """A config folder as on a vehicle (the repository's YAML + the trusted key), one short scenario; a bundle."""
    cfg, priv = vehicle_config_dir(tmp_path, max_duration_s=3.0)
    observation = ObservationSpec.from_config(config_dir() / "dataset.yaml")
    bundle = vehicle_fixtures().make_bundle(tmp_path / "tiny-v1", priv, observation=observation)
    return cfg, bundle
