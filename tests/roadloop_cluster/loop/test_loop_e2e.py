"""`roadloop loop` for real, at tiny sizes: every part runs as its own process, as in `make demo`.

Slow (a hub, the bridge, the simulator, torchrun with 2 ranks, export, closed-loop evaluation):
marked `slow`, sized to stay within a few minutes on 2 cores.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import matplotlib.image as mpimg
import pytest
import yaml

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _tiny_config(tmp_path: Path, repo_root: Path, **overrides: object) -> Path:
    cfg = {
        "vehicle": "ci-car",
        "rounds": 2,
        "scenarios": ["highway_light"],
        "dataset_config": str(repo_root / "config" / "dataset.yaml"),
        "record": {"episodes": 2, "seed": 1},
        "train": {"config": str(repo_root / "config" / "train.yaml"), "nproc": 2, "epochs": 2, "batch_size": 32},
        "gate": {"episodes": 1, "seed": 7},
        "drive": {"episodes": 1, "seed": 11},
        "intervention": {"episodes": 2, "seed": 13, "max_corrections": 1},
        "dagger": {"episodes": 1, "seed": 31, "beta": 0.5},
        "evaluation": {"episodes": 2, "seed": 21},
    }
    cfg.update(overrides)
    path = tmp_path / "loop.yaml"
    path.write_text(yaml.safe_dump({"loop": cfg}))
    return path


def _roadloop(*args: str | Path, timeout: float) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SDL_VIDEODRIVER": "offscreen"}
    entry = "import sys; from roadloop_core.cli.main import main; sys.argv[0] = 'roadloop'; main()"
    return subprocess.run(
        [sys.executable, "-c", entry, *map(str, args)],
        capture_output=True, text=True, timeout=timeout, env=env, check=False,
    )  # fmt: skip


@pytest.mark.slow
def test_loop_end_to_end_two_rounds(tmp_path: Path, repo_root: Path) -> None:
    out = tmp_path / "out"
    proc = _roadloop("loop", "--config", _tiny_config(tmp_path, repo_root), "--out", out, timeout=900)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads((out / "loop.json").read_text())
    assert summary["status"] == "ok"
    names = [s["name"] for s in summary["stages"]]
    assert names[:3] == ["setup", "hub", "r1-record"]
    assert "r2-corrections" in names and names[-1] == "r2-drive"
    assert all(s["status"] == "ok" for s in summary["stages"])
    r1, r2 = summary["rounds"]
    # round 1 was gated against lanekeep on the same episodes; the verdict follows the paired CI
    g1 = r1["gate"]
    assert g1["incumbent"]["name"] == "lanekeep"
    diff = g1["difference"]
    assert diff["n"] == 1 and diff["low"] == diff["mean"] == diff["high"]  # one pair: nothing to resample
    assert diff["mean"] == pytest.approx(g1["candidate"]["ds"] - g1["incumbent"]["ds"], abs=1e-4)
    assert g1["published"] is (diff["low"] > g1["margin"])
    assert r1["training"]["open_loop"]["constant_velocity"]["l2_3s"] is not None
    # round 2: the fleet drive happened and its corrections (if any) reached the dataset as interventions
    inter = r2["interventions"]
    assert inter["corrections"] >= inter["failed"] >= 0
    assert r2["dataset"]["interventions"] == inter["corrections"]
    # ... and so did the DAgger drive, its labelled states counted by kind, round 2 fine-tuning round 1's model
    dagger = r2["dagger"]
    assert dagger["bags"] == r2["dataset"]["dagger"] == 1 and dagger["beta"] == 0.5
    assert dagger["labelled"]["states"] > 0 and "r2-dagger" in names
    assert r2["dataset"]["bags"] == r1["dataset"]["bags"] + inter["corrections"] + 1
    assert r2["training"]["init_from"] is not None
    # the vehicle has a model installed iff something was published to production
    published = r1["gate"]["published"] or r2["gate"]["published"]
    assert (out / "vehicle" / "models" / "current").exists() is published
    # the report exists and every figure it shows is a real PNG
    report = (out / "report.md").read_text()
    assert "## Closed loop" in report and "Round 1: the candidate" in report
    assert "## The gate: candidate and incumbent on the same episodes" in report and "95 % CI [" in report
    assert "## DAgger: the policy drives, the expert labels every state" in report and "## Round by round" in report
    figures = [line.split("](", 1)[1].rstrip(")") for line in report.splitlines() if line.startswith("![")]
    assert "training.png" in figures and "closed_loop.png" in figures and "stage_times.png" in figures
    for fig in figures:
        data = (out / fig).read_bytes()
        assert data[:8] == PNG_MAGIC, fig
        assert mpimg.imread(out / fig).size > 0


@pytest.mark.slow
def test_a_failing_stage_is_named_and_outputs_are_kept(tmp_path: Path, repo_root: Path) -> None:
    out = tmp_path / "out"
    missing = tmp_path / "no-such-dataset.yaml"
    config = _tiny_config(tmp_path, repo_root, dataset_config=str(missing))
    proc = _roadloop("loop", "--config", config, "--out", out, timeout=300)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("roadloop: error: stage 'r1-dataset'")
    assert "no-such-dataset.yaml" in last
    assert "logs/r1-dataset.log" in last
    # what earlier stages made is still there; the record and the report say where it stopped
    assert (out / "keys" / "signing.pub").is_file()
    assert len(list((out / "hub" / "bags").iterdir())) == 2  # the shipped demonstrations, in the hub's store
    summary = json.loads((out / "loop.json").read_text())
    assert summary["status"] == "failed" and summary["failed_stage"] == "r1-dataset"
    assert [s["status"] for s in summary["stages"]] == ["ok", "ok", "ok", "ok", "failed"]
    assert "STOPPED at stage 'r1-dataset'" in (out / "report.md").read_text()
    assert "no-such-dataset.yaml" in (out / "logs" / "r1-dataset.log").read_text()


@pytest.mark.slow
@pytest.mark.parametrize(
    ("overrides", "needle"),
    [
        ({"scenarios": ["no_such_scenario"]}, "unknown scenario 'no_such_scenario'"),
        # the gate on an episode the demonstrations were recorded on: the overlap is named at setup
        (
            {"gate": {"episodes": 1, "seed": 1}},
            "record (training data, base seed 1) and gate (gate, base seed 1) play the same 1 episode(s): "
            "highway_light seed 1000",
        ),
    ],
)
def test_setup_refuses_a_config_the_simulator_cannot_serve(
    tmp_path: Path, repo_root: Path, overrides: dict[str, object], needle: str
) -> None:
    out = tmp_path / "out"
    proc = _roadloop("loop", "--config", _tiny_config(tmp_path, repo_root, **overrides), "--out", out, timeout=300)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("roadloop: error: stage 'setup'") and needle in last
    assert json.loads((out / "loop.json").read_text())["failed_stage"] == "setup"


@pytest.mark.slow
def test_sigterm_stops_the_part_and_the_hub_and_keeps_the_record(tmp_path: Path, repo_root: Path) -> None:
    import signal
    import time

    import httpx

    out = tmp_path / "out"
    entry = "import sys; from roadloop_core.cli.main import main; sys.argv[0] = 'roadloop'; main()"
    config = _tiny_config(tmp_path, repo_root, record={"episodes": 8, "seed": 1})
    proc = subprocess.Popen(
        [sys.executable, "-c", entry, "loop", "--config", str(config), "--out", str(out)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env={**os.environ, "SDL_VIDEODRIVER": "offscreen"},
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 120
        url = None
        while time.monotonic() < deadline and url is None:  # wait until the hub is up and recording runs
            stages = out / "stages.json"
            if stages.is_file():
                done = {s["name"]: s for s in json.loads(stages.read_text())}
                url = done.get("hub", {}).get("numbers", {}).get("url")
            time.sleep(0.2)
        assert url, "the hub stage never finished"
        assert httpx.get(f"{url}/v1/health", timeout=5).status_code == 200
        proc.send_signal(signal.SIGTERM)
        proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 128 + signal.SIGTERM
    with pytest.raises(httpx.HTTPError):
        httpx.get(f"{url}/v1/health", timeout=5)
    summary = json.loads((out / "loop.json").read_text())
    assert summary["status"] == "interrupted"
    assert "INTERRUPTED" in (out / "report.md").read_text()
