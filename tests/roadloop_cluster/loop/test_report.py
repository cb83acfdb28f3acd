"""The report writer on recorded stage results: report.md says what happened, figures are valid PNGs."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import matplotlib.image as mpimg
import pytest

from roadloop_cluster.loop.report import headline, write_report

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def _summary() -> dict[str, Any]:
    """A two-round summary shaped like the one `roadloop loop` records."""
    stages = [
        {"name": n, "title": t, "status": "ok", "seconds": s, "started": 0.0, "numbers": num, "artifacts": {}}
        for n, t, s, num in [
            ("hub", "start the hub", 2.1, {"url": "http://127.0.0.1:5555"}),
            ("r1-record", "record expert demos", 40.0, {"bags": 8, "frames": 3200}),
            ("r1-train", "train with torchrun", 120.5, {"ranks": 2, "epochs": 4, "l2_3s": 1.9}),
        ]
    ]
    training = {
        "steps": list(range(1, 41)),
        "loss": [2.0 / (1 + i / 5) for i in range(40)],
        "epochs": [1, 2, 3, 4],
        "val_l2_3s": [3.0, 2.4, 2.1, 1.9],
        "cv_l2_3s": [2.8, 2.8, 2.8, 2.8],
        "open_loop": {
            "model": {"l2_1s": 0.4, "l2_2s": 1.0, "l2_3s": 1.9},
            "constant_velocity": {"l2_1s": 0.6, "l2_2s": 1.5, "l2_3s": 2.8},
            "ego_mlp": {"l2_1s": 0.5, "l2_2s": 1.3, "l2_3s": 2.5},
        },
    }
    drive = {
        "model": "demo-v1",
        "ds": 71.0,
        "rc": 88.0,
        "ip": 0.8,
        "success": 50.0,
        "episodes": 4,
        "plots": ["round1/drive-plots/000_highway_light_s11000.png"],
    }
    r1 = {
        "round": 1,
        "dataset": {"dataset_id": "abc123", "bags": 8, "interventions": 0, "train": 2500, "val": 700},
        "training": training,
        "gate": {
            "candidate": {
                "name": "demo-v1",
                "ds": 71.0,
                "rc": 88.0,
                "ip": 0.8,
                "episodes": 4,
                "infractions_per_km": 0.52,
                "collisions": 1,
                "success": 75.0,
                "by_scenario": {
                    "highway_light": {"ds": 80.0, "collisions": 0},
                    "highway_dense": {"ds": 62.0, "collisions": 1},
                },
            },
            "incumbent": {
                "name": "lanekeep",
                "ds": 55.0,
                "rc": 90.0,
                "ip": 0.61,
                "episodes": 4,
                "infractions_per_km": 1.4,
                "collisions": 3,
                "success": 25.0,
                "by_scenario": {
                    "highway_light": {"ds": 70.0, "collisions": 1},
                    "highway_dense": {"ds": 40.0, "collisions": 2},
                },
            },
            "published": True,
            "margin": 0.0,
            "difference": {
                "mean": 16.0,
                "low": 9.0,
                "high": 23.0,
                "n": 4,
                "confidence": 0.95,
                "resamples": 10000,
                "seed": 0,
            },
        },
        "drive": drive,
        "latency": {
            "samples_ms": [3.0 + (i % 7) * 0.2 for i in range(300)],
            "p50_ms": 3.6,
            "p99_ms": 4.2,
            "frames": 300,
            "realtime_factor": 25.0,
            "fallbacks": 0,
        },
    }
    r2 = copy.deepcopy(r1)
    r2["round"] = 2
    r2["gate"] = {
        "candidate": {"name": "demo-v2", "ds": 68.0, "rc": 85.0, "ip": 0.8, "episodes": 4},
        "incumbent": {"name": "demo-v1", "ds": 71.0, "rc": 88.0, "ip": 0.8, "episodes": 4},
        "published": False,
        "margin": 0.0,
        "difference": {
            "mean": -3.0,
            "low": -9.5,
            "high": 2.5,
            "n": 4,
            "confidence": 0.95,
            "resamples": 10000,
            "seed": 0,
        },
        "reason": "paired DS difference -3.0 over 4 episodes, 95 % CI [-9.5, +2.5], margin 0.0: not better",
    }
    r2["interventions"] = {
        "model": "demo-v1",
        "episodes": 6,
        "failed": 2,
        "corrections": 2,
        "ds": 60.0,
        "rc": 80.0,
        "ip": 0.75,
        "failed_episodes": [{"scenario": "highway_light", "seed": 13000, "ds": 20.0, "why": "collision"}],
    }
    return {"format": "roadloop-loop/1", "status": "ok", "wall_s": 640.0, "stages": stages, "rounds": [r1, r2]}


def _assert_png(path: Path) -> None:
    assert path.read_bytes()[:8] == PNG_MAGIC
    image = mpimg.imread(path)
    assert image.ndim == 3 and image.shape[0] > 50 and image.shape[1] > 50
    assert float(image.std()) > 0.0  # not a blank canvas


def test_report_and_figures(tmp_path: Path) -> None:
    path = write_report(_summary(), tmp_path)
    text = path.read_text()
    for figure in (
        "stage_times.png",
        "training.png",
        "open_loop.png",
        "closed_loop.png",
        "latency.png",
    ):
        assert f"]({figure})" in text, figure
        _assert_png(tmp_path / figure)
    assert (
        "Round 1: the candidate (demo-v1) beat lanekeep closed loop: DS 71.0 vs 55.0, paired DS difference +16.0 "
        "over 4 episodes, 95 % CI [+9.0, +23.0], lower bound above the margin 0.0 — published to production."
    ) in text
    assert "Round 2: the candidate (demo-v2) did NOT beat demo-v1" in text
    assert "Why: paired DS difference -3.0 over 4 episodes, 95 % CI [-9.5, +2.5]" in text
    # the gate's table: both drivers on the same episodes, per scenario, with infractions/km and collisions
    assert "## The gate: candidate and incumbent on the same episodes" in text
    assert (
        "| | DS | DS highway_light | DS highway_dense | RC (%) | IP | infractions/km | collisions | "
        "collisions highway_light | collisions highway_dense | success (%) |"
    ) in text
    assert "| candidate: demo-v1 | 71.0 | 80.0 | 62.0 | 88.0 | 0.800 | 0.52 | 1 | 0 | 1 | 75.0 |" in text
    assert "| incumbent: lanekeep | 55.0 | 70.0 | 40.0 | 90.0 | 0.610 | 1.40 | 3 | 1 | 2 | 25.0 |" in text
    assert (
        "Paired DS difference +16.0 over 4 episodes, 95 % CI [+9.0, +23.0] (candidate − incumbent, per episode), "
        "from 10000 bootstrap resamples of the pairs (seed 0). Publishing needs the lower bound above the margin "
        "0.0: **published**."
    ) in text
    assert "above the margin 0.0: **refused**." in text
    assert "| 1 | constant_velocity | 0.60 | 1.50 | 2.80 |" in text
    assert "`r1-train`" in text and "120.5" in text
    assert "R2 fleet: demo-v1" in text
    assert "| highway_light | 13000 | 20.0 | collision |" in text
    assert "p99 4.20 ms" in text
    # the evaluator's per-episode path plots are linked where the run left them
    assert "![round 1 evaluator plot](round1/drive-plots/000_highway_light_s11000.png)" in text
    # nothing half-written is left beside the report
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]


def test_failed_run_still_reports_where_it_stopped(tmp_path: Path) -> None:
    summary = _summary()
    summary["status"] = "failed"
    summary["failed_stage"] = "r2-train"
    summary["error"] = "`roadloop train` exited 2: NaN loss at step 12"
    summary["stages"].append(
        {"name": "r2-train", "title": "train", "status": "failed", "seconds": 3.0, "error": "NaN loss at step 12"}
    )
    del summary["rounds"][1]["training"]
    text = write_report(summary, tmp_path).read_text()
    assert "STOPPED at stage 'r2-train'" in text
    assert "**NaN loss at step 12**" in text
    _assert_png(tmp_path / "stage_times.png")


def test_empty_summary_writes_report_without_figures(tmp_path: Path) -> None:
    text = write_report({"status": "failed", "failed_stage": "hub", "error": "port busy"}, tmp_path).read_text()
    assert "no training curves were recorded" in text
    assert "no closed-loop evaluation was recorded" in text
    assert not list(tmp_path.glob("*.png"))


@pytest.mark.parametrize(
    ("published", "expected"),
    [(True, "beat lanekeep"), (False, "did NOT beat lanekeep")],
)
def test_headline_says_plainly_whether_round1_won(published: bool, expected: str) -> None:
    summary = {
        "rounds": [
            {
                "round": 1,
                "gate": {
                    "candidate": {"name": "v1", "ds": 50.0},
                    "incumbent": {"name": "lanekeep", "ds": 60.0},
                    "published": published,
                    "reason": "collisions in dense traffic",
                },
            }
        ]
    }
    lines = headline(summary)
    assert len(lines) == 1 and expected in lines[0]
    assert ("collisions in dense traffic" in lines[0]) is (not published)


def _driver(name: str, ds: float, collisions: int) -> dict[str, Any]:
    return {"name": name, "ds": ds, "rc": 100.0, "collisions": collisions}


def test_held_out_evaluation_says_whether_each_baseline_is_beaten(tmp_path: Path) -> None:
    summary = _summary()
    summary["evaluation"] = {
        "episodes": 48, "seed": 21, "collision_rate": 0.0,
        "ratio_to_expert": {"mean": 0.98, "low": 0.95, "high": 1.0},
        "gain_over_lanekeep": {"mean": 30.0, "low": 22.5, "high": 37.0},
        "gain_over_constant": {"mean": 2.0, "low": -1.5, "high": 5.0},
        "model": _driver("roadloop-policy-v3", 98.0, 0), "expert": _driver("expert", 100.0, 0),
        "lanekeep": _driver("lanekeep", 68.0, 12), "constant": _driver("constant", 96.0, 1),
    }  # fmt: skip
    text = write_report(summary, tmp_path).read_text()
    section = text[text.index("## Held-out evaluation") :]
    for row in ("| roadloop-policy-v3 | 98.0 |", "| lanekeep | 68.0 |", "| constant | 96.0 |"):
        assert row in section
    assert "DS gain over lanekeep: +30.0, 95 % CI [+22.5, +37.0] (significant)" in section
    assert "DS gain over constant: +2.0, 95 % CI [-1.5, +5.0] (not significant)" in section
