"""The stage runner: times and records stages, and a failure names the stage and keeps every output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from roadloop_cluster.loop.errors import LoopError, StageFailed
from roadloop_cluster.loop.stage_runner import StageOutcome, StageRunner
from roadloop_core.fsio import atomic_write_json


def test_stages_are_recorded_in_order_with_numbers(tmp_path: Path) -> None:
    seen: list[str] = []
    runner = StageRunner(
        tmp_path,
        on_start=lambda name, title: seen.append(f"start {name}"),
        on_end=lambda r: seen.append(f"end {r.name} {r.status}"),
    )
    out = runner.run("record", "record demos", lambda: StageOutcome({"bags": 3}, {"bags": "vehicle/rec"}))
    assert out.numbers == {"bags": 3}
    runner.run("ship", "ship bags", lambda: StageOutcome({"uploaded": 3}))
    record = json.loads((tmp_path / "stages.json").read_text())
    assert [s["name"] for s in record] == ["record", "ship"]
    assert record[0]["status"] == "ok"
    assert record[0]["numbers"] == {"bags": 3}
    assert record[0]["artifacts"] == {"bags": "vehicle/rec"}
    assert record[0]["seconds"] >= 0.0
    assert seen == ["start record", "end record ok", "start ship", "end ship ok"]


def test_failure_names_the_stage_and_keeps_outputs(tmp_path: Path) -> None:
    runner = StageRunner(tmp_path)

    def first() -> StageOutcome:
        (tmp_path / "dataset").mkdir()
        (tmp_path / "dataset" / "index.json").write_text("{}")
        return StageOutcome({"samples": 10})

    def second() -> StageOutcome:
        runner.log_path("train").write_text("$ roadloop train ...\nboom\n")
        raise LoopError("`roadloop train` exited 2: dataset image 128x64 does not match model 64x64")

    runner.run("dataset", "build the dataset", first)
    with pytest.raises(StageFailed) as info:
        runner.run("train", "train with torchrun", second)
    err = info.value
    assert err.stage == "train"
    message = str(err)
    assert "stage 'train'" in message
    assert "does not match model" in message
    assert "logs/train.log" in message
    assert str(tmp_path) in message
    assert "\n" not in message
    # what the first stage made is still there, and the record says where the loop stopped
    assert (tmp_path / "dataset" / "index.json").is_file()
    record = json.loads((tmp_path / "stages.json").read_text())
    assert [(s["name"], s["status"]) for s in record] == [("dataset", "ok"), ("train", "failed")]
    assert "does not match model" in record[1]["error"]


def test_unexpected_exception_is_logged_with_traceback(tmp_path: Path) -> None:
    runner = StageRunner(tmp_path)

    def broken() -> StageOutcome:
        return StageOutcome({"x": 1 // 0})

    with pytest.raises(StageFailed, match=r"stage 'gate' .*ZeroDivisionError"):
        runner.run("gate", "closed-loop gate", broken)
    text = (tmp_path / "logs" / "gate.log").read_text()
    assert "Traceback" in text and "ZeroDivisionError" in text


def test_stage_names_are_unique(tmp_path: Path) -> None:
    runner = StageRunner(tmp_path)
    runner.run("a", "a", StageOutcome)
    with pytest.raises(ValueError, match="used twice"):
        runner.run("a", "a", StageOutcome)


def test_write_json_atomic_replaces_whole_file(tmp_path: Path) -> None:
    path = tmp_path / "x.json"
    atomic_write_json(path, {"a": 1})
    atomic_write_json(path, {"b": [1, 2]})
    assert json.loads(path.read_text()) == {"b": [1, 2]}
    assert [p.name for p in tmp_path.iterdir()] == ["x.json"]
