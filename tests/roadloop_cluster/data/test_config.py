"""dataset.yaml: an empty file or one without `observation:` is an error naming the file, never silent defaults."""

from __future__ import annotations

from pathlib import Path

import pytest

from roadloop_cluster.data import load_dataset_config
from roadloop_core.errors import ConfigError


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty; expected 'observation:' and 'build:' sections"),
        ("# only a comment\n", "empty; expected 'observation:' and 'build:' sections"),
        ("build:\n  shard_size: 16\n", "no 'observation:' mapping"),
        ("observation: 3\n", "no 'observation:' mapping"),
        ("observations: {}\n", "unknown section(s) observations"),
    ],
)
def test_bad_dataset_yaml_is_one_error_naming_the_file(tmp_path: Path, text: str, message: str) -> None:
    path = tmp_path / "dataset.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_dataset_config(path)
    assert str(err.value).startswith(str(path)) and message in str(err.value)


def test_the_repository_dataset_yaml_loads(repo_root: Path) -> None:
    cfg = load_dataset_config(repo_root / "config" / "dataset.yaml")
    assert cfg.observation.camera == "camera" and cfg.build.shard_size > 0
