"""hub.yaml: an empty file or one without its section is an error naming the file, never silent defaults."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from roadloop_core.config import config_dir
from roadloop_core.errors import ConfigError
from roadloop_hub.config import HubConfig, load_hub_config


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty; expected a 'hub:' section"),
        ("# only a comment\n", "empty; expected a 'hub:' section"),
        ("hub_settings:\n  port: 1\n", "no 'hub:' section (top-level keys: hub_settings)"),
        ("hub:\n", "'hub:' must be a mapping"),
        ("hub: [1, 2]\n", "'hub:' must be a mapping"),
        ("hub:\n  prot: 8470\n", "unknown parameter(s) prot"),
    ],
)
def test_bad_hub_yaml_is_one_error_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "hub.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_hub_config(path)
    assert str(err.value).startswith(f"{path}: ") and message in str(err.value)


def test_the_repository_hub_yaml_is_the_documented_defaults() -> None:
    assert load_hub_config(config_dir() / "hub.yaml") == HubConfig()


def test_serve_with_an_empty_config_exits_2_with_one_line(tmp_path: Path) -> None:
    empty = tmp_path / "hub.yaml"
    empty.write_text("")
    cmd = [sys.executable, "-m", "roadloop_hub", "serve", "--root", str(tmp_path / "hub"), "--config", str(empty)]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    line = f"roadloop: error: {empty}: empty; expected a 'hub:' section (see config/hub.yaml)"
    assert proc.stderr.strip().splitlines() == [line]
