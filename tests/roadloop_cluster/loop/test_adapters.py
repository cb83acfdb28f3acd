"""Reading the parts' outputs into the loop's summary: sim eval reports, training runs, dataset indexes."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from roadloop_cluster.loop.adapters import dataset_summary, eval_summary, training_summary
from roadloop_cluster.loop.errors import LoopError


def _episode(seed: int, ds: float, success: bool, end: str, **infractions: int) -> dict[str, Any]:
    kinds = {"collision_static": 0, "collision_vehicle": 0, "invalid_command": 0, "off_road": 0}
    kinds.update(infractions)
    return {
        "index": seed % 1000, "scenario": "highway_light", "seed": seed, "driving_score": ds,
        "route_completion": 100.0 if success else ds, "infraction_penalty": 1.0 if success else 0.6,
        "success": success, "end_reason": end, "infractions": kinds, "route_length_m": 500.0,
    }  # fmt: skip


def _eval_report(tmp_path: Path) -> Path:
    """The shape `roadloop sim eval --json` writes (format roadloop-sim-eval/1)."""
    report = {
        "format": "roadloop-sim-eval/1",
        "driver": "lanekeep",
        "summary": {"episodes": 3, "driving_score": 55.5, "route_completion": 80.0, "infraction_penalty": 0.8,
                    "success_rate": 1 / 3, "infractions_per_km": 1.2,
                    "infractions": {"collision_vehicle": 1, "collision_static": 0, "off_road": 0}},
        "episodes": [
            _episode(7000, 36.6, False, "collision", collision_vehicle=1),
            _episode(7001, 30.0, False, "timeout"),
            _episode(7002, 100.0, True, "route_complete"),
        ],
    }  # fmt: skip
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(report))
    return path


def test_eval_summary_reads_the_sim_eval_report(tmp_path: Path) -> None:
    s = eval_summary(_eval_report(tmp_path), "lanekeep")
    assert s["name"] == "lanekeep"
    assert (s["ds"], s["rc"], s["ip"]) == (55.5, 80.0, 0.8)
    assert s["success"] == pytest.approx(100 / 3)
    assert s["episodes"] == 3
    rows = s["per_episode"]
    assert [r["why"] for r in rows] == ["collision_vehicle", "timeout", ""]
    assert [r["success"] for r in rows] == [False, False, True]
    assert rows[0]["seed"] == 7000 and rows[0]["ds"] == 36.6
    # what the gate's table shows for each driver: infractions per km, collisions, and both per scenario
    assert (s["infractions_per_km"], s["collisions"]) == (1.2, 1)
    km = 0.5 * (36.6 + 30.0 + 100.0) / 100.0  # of route completed, as the evaluator counts it
    assert s["by_scenario"] == {
        "highway_light": {
            "episodes": 3, "ds": pytest.approx((36.6 + 30.0 + 100.0) / 3), "collisions": 1,
            "infractions_per_km": pytest.approx(1 / km),
        }
    }  # fmt: skip


@pytest.mark.parametrize(
    ("content", "needle"),
    [(None, "was not written"), ("{not json", "cannot read"), ('{"summary": {"episodes": 0}}', "no driving score")],
)
def test_eval_summary_bad_files_name_the_file(tmp_path: Path, content: str | None, needle: str) -> None:
    path = tmp_path / "eval.json"
    if content is not None:
        path.write_text(content)
    with pytest.raises(LoopError, match=needle) as info:
        eval_summary(path, "x")
    assert str(path) in str(info.value)


def test_training_summary_reads_metrics_and_tensorboard(tmp_path: Path) -> None:
    from torch.utils.tensorboard import SummaryWriter

    run = tmp_path / "run"
    (run / "tb").mkdir(parents=True)
    writer = SummaryWriter(str(run / "tb"))
    for step in range(10, 60, 10):
        writer.add_scalar("train/loss", 10.0 / step, step)
        writer.add_scalar("train/lr", 1e-3, step)
    for epoch, step in enumerate((25, 50)):
        writer.add_scalar("val/l2_3s", 2.0 - epoch, step)
        writer.add_scalar("baseline_constant_velocity/l2_3s", 1.5, step)
    writer.close()
    history = [{"epoch": 0, "step": 25, "l2_3s": 2.0}, {"epoch": 1, "step": 50, "l2_3s": 1.0}]
    metrics = {
        "val": {"ade": 0.5, "fde": 1.2, "l2_1s": 0.3, "l2_2s": 0.6, "l2_3s": 1.0},
        "baselines": {"constant_velocity": {"l2_1s": 0.4, "l2_2s": 0.9, "l2_3s": 1.5},
                      "ego_mlp": {"l2_1s": 0.5, "l2_2s": 1.1, "l2_3s": 1.9}},
        "history": history, "world_size": 2, "steps": 50, "samples_per_s": 400.0,
    }  # fmt: skip
    (run / "metrics.json").write_text(json.dumps(metrics))
    t = training_summary(run)
    assert t["steps"] == [10, 20, 30, 40, 50]
    assert t["loss"] == pytest.approx([1.0, 0.5, 10 / 30, 0.25, 0.2])
    assert t["epochs"] == [1, 2] and t["val_l2_3s"] == [2.0, 1.0]
    assert t["cv_l2_3s"] == [1.5, 1.5]
    assert t["open_loop"]["model"]["l2_3s"] == 1.0
    assert t["open_loop"]["constant_velocity"]["l2_1s"] == 0.4
    assert t["open_loop"]["ego_mlp"]["l2_2s"] == 1.1
    assert t["world_size"] == 2 and t["total_steps"] == 50


def test_dataset_summary_reads_the_index(tmp_path: Path) -> None:
    from roadloop_core.contract.dataset_index import DatasetIndex, Skipped, Source, Split, write_dataset_index
    from roadloop_core.contract.observation import ObservationSpec

    index = DatasetIndex(
        dataset_id="abc", count=100, arrays=("ego_state",), observation=ObservationSpec(), topics={},
        splits={"train": Split(90, ()), "val": Split(10, ())}, stats={}, stats_split="train",
        sources=(Source("a", "1" * 64, "train", 90), Source("b", "2" * 64, "val", 10)),
        drops={"no_future": 7, "route_missing": 1}, skipped=(Skipped("c", "truncated"),),
    )  # fmt: skip
    write_dataset_index(tmp_path, index)
    s = dataset_summary(tmp_path)
    assert (s["dataset_id"], s["train"], s["val"], s["bags"], s["drops"], s["skipped"]) == ("abc", 90, 10, 2, 8, 1)
    assert s["observation"]["camera"] == "camera" and s["label"] == {"horizon": 8, "dt": 0.5}
