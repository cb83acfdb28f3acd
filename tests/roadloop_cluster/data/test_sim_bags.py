"""A dataset from real simulator recordings (`roadloop sim record`, highway-env)."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from roadloop_cluster.data import BuildOptions, build_dataset

pytestmark = pytest.mark.slow


def test_dataset_from_simulator_bags(tmp_path: Path) -> None:
    if importlib.util.find_spec("highway_env") is None:
        pytest.skip("highway-env is not installed: cannot record simulator bags")
    try:
        from roadloop_sim.record import record_episodes
        from roadloop_sim.scenarios import load_scenarios
    except ImportError as err:
        pytest.skip(f"roadloop_sim recorder not importable: {err}")
    from roadloop_core.config import config_dir
    from roadloop_core.registry import load_registry

    scenarios, registry = load_scenarios(config_dir() / "scenarios.yaml"), load_registry(config_dir() / "topics.yaml")
    record_episodes(
        tmp_path / "bags",
        scenarios="uturn",
        episodes=2,
        seed=0,
        scenario_set=scenarios,
        registry=registry,
        progress=False,
    )
    index = build_dataset([tmp_path / "bags"], tmp_path / "ds", BuildOptions(progress=False))
    assert len(index.sources) == 2 and index.skipped == ()
    assert index.splits["train"].count > 0 and index.splits["val"].count > 0
    assert np.isfinite(index.stats["ego_state"].std).all()
    res = subprocess.run(
        [sys.executable, "-c", "from roadloop_core.cli import main; main()", "data", "info", str(tmp_path / "ds")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert res.returncode == 0, res.stderr
    assert index.dataset_id in res.stdout and "val" in res.stdout and "no_future" in res.stdout
