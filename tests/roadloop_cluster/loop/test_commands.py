"""Parts run as real `roadloop` subprocesses; a failure comes back as the command's own one-line error."""

from __future__ import annotations

from pathlib import Path

import pytest

from roadloop_cluster.loop.commands import run_roadloop, tail_error
from roadloop_cluster.loop.errors import LoopError


def test_success_returns_stdout_and_logs_command(tmp_path: Path) -> None:
    log = tmp_path / "logs" / "x.log"
    out = run_roadloop(["--help"], log=log, timeout_s=120)
    assert "loop" in out
    text = log.read_text()
    assert text.startswith("$ roadloop --help")
    assert "[exit 0" in text


def test_failure_carries_the_parts_one_line_error(tmp_path: Path) -> None:
    log = tmp_path / "x.log"
    missing = tmp_path / "no-such-loop.yaml"
    with pytest.raises(LoopError) as info:
        run_roadloop(["loop", "--config", str(missing), "--out", str(tmp_path / "out")], log=log, timeout_s=120)
    message = str(info.value)
    assert "exited 2" in message
    assert "no-such-loop.yaml: no such config file" in message
    assert "\n" not in message


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("progress 1\nroadloop: error: bag X: truncated\n", "bag X: truncated"),
        ("Traceback...\nValueError: nope\n", "ValueError: nope"),
        ("last words\n\n", "last words"),
        ("", "(no output)"),
        ("a\rb 50%\rroadloop: error: stage went wrong\r", "stage went wrong"),
    ],
)
def test_tail_error(text: str, expected: str) -> None:
    assert tail_error(text) == expected


def test_a_stage_commands_log_to_the_stage_file_in_the_runs_config_folder(tmp_path: Path) -> None:
    from roadloop_cluster.loop.commands import Commands

    run_config = tmp_path / "run-config"
    run_config.mkdir()
    roadloop = Commands(tmp_path / "logs" / "r1-gate.log", timeout_s=120, env={"ROADLOOP_CONFIG_DIR": str(run_config)})
    with pytest.raises(LoopError, match=r"run-config/loop.yaml: no such config file"):
        roadloop("loop", "--out", tmp_path / "out")  # the default config comes from the run's folder
    assert (tmp_path / "logs" / "r1-gate.log").read_text().startswith("$ roadloop loop --out ")
