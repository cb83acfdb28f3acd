from __future__ import annotations

from pathlib import Path

import pytest

from roadloop_core.errors import ConfigError
from roadloop_core.features import ObservationSpec


def test_repository_config_loads(repo_root: Path) -> None:
    spec = ObservationSpec.from_config(repo_root / "config" / "dataset.yaml")
    assert spec.camera == "camera"
    assert spec.image_shape == (spec.image_height, spec.image_width, 3)
    assert ObservationSpec.from_dict(spec.to_dict()) == spec  # the manifest round trip


@pytest.mark.parametrize(
    ("patch", "message"),
    [
        ({"image_width": 0}, "image_width"),
        ({"sample_rate_hz": "fast"}, "sample_rate_hz: expected a number"),
        ({"lookahead": 3}, "unknown parameter"),
        ({"route_max_age_s": -1.0}, "route_max_age_s"),
    ],
)
def test_bad_values_name_the_field(patch: dict[str, object], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ObservationSpec.from_dict({**ObservationSpec().to_dict(), **patch})


def test_state_only() -> None:
    spec = ObservationSpec(camera=None)
    assert spec.state_only and spec.image_shape is None
    assert spec.roles() == ["imu", "odometry", "route"]


def test_missing_section(tmp_path: Path) -> None:
    p = tmp_path / "d.yaml"
    p.write_text("build: {}\n")
    with pytest.raises(ConfigError, match="no 'observation:'"):
        ObservationSpec.from_config(p)
