"""config/loop.yaml loads into LoopConfig; bad keys and values fail with the file and field named."""

from __future__ import annotations

from pathlib import Path

import pytest

from roadloop_cluster.loop.config import LoopConfig, load_loop_config
from roadloop_cluster.loop.errors import LoopError
from roadloop_core.errors import ConfigError


def test_repository_loop_yaml_loads(repo_root: Path) -> None:
    cfg = load_loop_config(repo_root / "config" / "loop.yaml")
    assert isinstance(cfg, LoopConfig)
    assert cfg.rounds == 2
    assert cfg.train.nproc == 2
    assert cfg.gate.baseline == "lanekeep"
    assert cfg.scenarios


def test_scenarios_exist_in_scenarios_yaml(repo_root: Path) -> None:
    import yaml

    cfg = load_loop_config(repo_root / "config" / "loop.yaml")
    scen_file = repo_root / "config" / "scenarios.yaml"
    if not scen_file.is_file():
        pytest.skip("config/scenarios.yaml not written yet (simulation issue)")
    known = set(yaml.safe_load(scen_file.read_text())["scenarios"])
    assert set(cfg.scenarios) <= known
    assert set(cfg.record.scenarios) <= known


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ("loop: {rounds: 9}", "rounds must be within 1..8"),
        ("loop: {dagger: {beta: 1.5}}", "dagger.beta"),
        ("loop: {train: {init_from: latest}}", "train.init_from must be production or scratch"),
        ("loop: {scenarios: []}", "scenarios must name"),
        ("loop: {record: {episodes: 0}}", "record.episodes"),
        ("loop: {train: {nproc: two}}", "loop.yaml.train.nproc"),
        ("loop: {gate: {margin: high}}", "gate.margin"),
        ("loop: {gate: {confidence: 95}}", "gate.confidence must be between 0 and 1"),
        ("loop: {gate: {resamples: 0}}", "gate.resamples must be at least 1"),
        ("loop: {evaluation: {episodes: 0}}", "evaluation.episodes must be at least 1"),
        ("loop: {episode_jobs: -1}", "episode_jobs must be 0"),
        ("loop: {epochs: 3}", "unknown parameter(s) epochs"),
        ("loop: {drive: {episodes: 2, speed: 3}}", "unknown parameter(s) speed"),
        ("loop: [1, 2]", "'loop:' must be a mapping"),
        ("loop: {rounds: 2", "invalid YAML"),
    ],
)
def test_bad_config_names_file_and_field(tmp_path: Path, text: str, needle: str) -> None:
    path = tmp_path / "loop.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as info:
        load_loop_config(path)
    message = str(info.value)
    assert "loop.yaml" in message
    assert needle in message
    assert "\n" not in message


def test_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such config file"):
        load_loop_config(tmp_path / "absent.yaml")


def test_resolve_relative_to_config_dir(tmp_path: Path) -> None:
    cfg = LoopConfig()
    assert cfg.resolve("train.yaml", tmp_path) == tmp_path / "train.yaml"
    assert cfg.resolve(str(tmp_path / "x.yaml"), Path("/elsewhere")) == tmp_path / "x.yaml"


def test_an_earlier_run_is_moved_aside_never_deleted(tmp_path: Path) -> None:
    from roadloop_cluster.loop.cli import _prepare_out

    out = tmp_path / "demo-out"
    assert _prepare_out(out) is None
    out.mkdir()
    assert _prepare_out(out) is None  # empty: used as is
    (out / "report.md").write_text("old report")
    (out / "hub").mkdir()
    kept = _prepare_out(out)
    assert kept is not None and kept.parent == out / "previous"
    assert (kept / "report.md").read_text() == "old report" and (kept / "hub").is_dir()
    assert [p.name for p in out.iterdir()] == ["previous"]
    (tmp_path / "file").write_text("x")
    with pytest.raises(LoopError, match="not a folder"):
        _prepare_out(tmp_path / "file")


@pytest.mark.parametrize("text", ["", "# nothing but a comment\n", "---\n"])
def test_an_empty_loop_yaml_is_an_error_not_defaults(tmp_path: Path, text: str) -> None:
    """Issue 13: an empty loop.yaml ran on the defaults, whose scenario name did not exist."""
    path = tmp_path / "loop.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError, match="empty; expected a 'loop:' section") as info:
        load_loop_config(path)
    assert str(info.value).startswith(str(path))


def test_the_default_scenarios_exist(repo_root: Path) -> None:
    import yaml

    known = set(yaml.safe_load((repo_root / "config" / "scenarios.yaml").read_text())["scenarios"])
    assert set(LoopConfig().scenarios) <= known
