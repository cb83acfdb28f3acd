"""docs/real-logs.md, run as written: one highway bag of a car's own (no camera, no route, the vehicle status as
label; 300 s, and 60 s as the issue's drive) through `data check`, `data build`, `train`, `keys gen`, `export`
and `replay`, with the shipped config/real-log/ files and nothing edited. The model must beat constant velocity
on the held-out time block, and the replay must leave INIT and drive, publishing only on the stack's own
topics."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from roadloop_core.bag import open_bag
from roadloop_core.registry import load_registry
from tests.support.real_bags import REAL_LOG_CONFIG, RealDrive, write_real_bag

CONFIG = REAL_LOG_CONFIG


def roadloop(*args: str | Path, timeout: float = 1800) -> subprocess.CompletedProcess[str]:
    cmd = [str(Path(sys.executable).parent / "roadloop"), *map(str, args)]
    env = {**os.environ, "COLUMNS": "250"}
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False, env=env)
    assert res.returncode == 0, f"roadloop {' '.join(map(str, args))}:\n{res.stdout[-3000:]}\n{res.stderr[-3000:]}"
    return res


@pytest.fixture(params=[300.0, 60.0], ids=["300s", "60s"])
def drive(request: pytest.FixtureRequest, real_bag: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The tests' 300 s highway bag, and a 60 s one as the issue's drive (split into 15 s blocks as shipped)."""
    if request.param == 300.0:
        return real_bag
    registry = load_registry(CONFIG / "topics.yaml")
    return write_real_bag(tmp_path_factory.mktemp("real60") / "highway", RealDrive(duration_s=60.0, seed=1), registry)


@pytest.mark.slow
def test_a_cars_own_bag_goes_through_the_documented_path(drive: Path, tmp_path: Path) -> None:
    real_bag = drive
    with open_bag(real_bag) as bag:
        long = bag.info.duration_s > 120
    data, topics = CONFIG / "dataset.yaml", CONFIG / "topics.yaml"
    check = roadloop("data", "check", real_bag, "--config", data, "--topics", topics)
    assert "ready to build" in check.stdout

    ds = tmp_path / "dataset"
    built = roadloop("data", "build", real_bag, "--config", data, "--topics", topics, "--out", ds, "-q")
    assert "from 1 bag(s), 0 skipped" in built.stdout
    assert "by time blocks" in roadloop("data", "info", ds).stdout

    run = tmp_path / "run"
    roadloop("train", "--config", CONFIG / "train.yaml", "--data", ds, "--out", run)
    metrics = json.loads((run / "metrics.json").read_text())
    val, cv = metrics["val"], metrics["baselines"]["constant_velocity"]
    figures = {k: (round(val[k], 3), round(cv[k], 3)) for k in ("l2_1s", "l2_2s", "l2_3s")}
    print(f"real-like held-out block, model vs constant velocity: {figures}")  # the figures docs/real-logs.md quotes
    for k in ("l2_1s", "l2_2s", "l2_3s"):
        assert val[k] < cv[k], figures
        assert metrics["gain_over_constant_velocity"][k] > 0
    if long:  # 60 s: an 11 s held-out stretch, nearly straight, where constant velocity is close (4 % at 3 s)
        assert val["l2_3s"] < 0.75 * cv["l2_3s"], figures

    keys, bundle = tmp_path / "keys", tmp_path / "bundle"
    roadloop("keys", "gen", "--out", keys)
    roadloop("export", run, "--out", bundle, "--sign-key", keys / "signing.key")
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert [t["name"] for t in manifest["inputs"]] == ["ego_state", "ego_history"]
    assert manifest["observation"]["route_source"] == "none" and manifest["observation"]["camera"] is None

    out, stats = tmp_path / "replayed", tmp_path / "stats.json"
    replay = roadloop("replay", real_bag, "--bundle", bundle, "--out", out, "--params", CONFIG / "vehicle.yaml",
                      "--public-key", keys / "signing.pub", "--stats", stats)  # fmt: skip
    assert "FAULT" not in replay.stderr
    d = json.loads(stats.read_text())
    assert d["problems"] == [] and d["monitored_roles"] == ["imu", "odometry", "command_raw"]
    assert (
        d["frames"] > (2500 if long else 500) and d["states"].get("active", 0) >= d["frames"] - 5
    )  # leaves INIT at once, drives
    assert d["fallbacks"] == 0 and "implausible_jump" not in d["faults"]  # the 6.2 m/s² IMU spike changes nothing
    with open_bag(out) as bag:
        written = {t.name: t.message_count for t in bag.info.topics}
        # the stack's command goes to its own topic; the vehicle status (the training label) is never written
        # one command per frame, plus the watchdog's stop commands before the first frame's command arrived
        assert (
            written["/roadloop/control/command"] == d["frames"] + d["watchdog_fallback_ticks"]
            and "/vehicle/status" not in written
        )
    assert set(written) == {"/roadloop/planning/trajectory", "/roadloop/control/command", "/diagnostics"}
