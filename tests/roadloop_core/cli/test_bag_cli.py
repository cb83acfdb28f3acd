"""The `roadloop bag` verbs through the real console script: the issue's Done-when commands and bad input."""

from __future__ import annotations

import json
import os
import random
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest

ROADLOOP = shutil.which("roadloop", path=str(Path(sys.executable).parent)) or "roadloop"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "COLUMNS": "120"}
    env.pop("ROADLOOP_DEBUG", None)
    return subprocess.run([ROADLOOP, *args], capture_output=True, text=True, timeout=120, env=env)


def test_info_json_reports_twenty_talker_messages(conformance_dir: Path) -> None:
    res = run("bag", "info", str(conformance_dir / "sqlite3" / "talker"), "--json")
    assert res.returncode == 0, res.stderr
    doc = json.loads(res.stdout)
    assert doc["message_count"] == 20
    assert {t["name"]: (t["type"], t["message_count"]) for t in doc["topics"]} == {
        "/topic": ("std_msgs/msg/String", 10),
        "/rosout": ("rcl_interfaces/msg/Log", 10),
        "/parameter_events": ("rcl_interfaces/msg/ParameterEvent", 0),
    }
    assert doc["topics"][0]["qos"][0]["reliability"] == "reliable"


def test_info_text_shows_storage_duration_and_topics(conformance_dir: Path) -> None:
    res = run("bag", "info", str(conformance_dir / "mcap" / "talker"))
    assert res.returncode == 0, res.stderr
    out = res.stdout
    for expected in (
        "Storage id:   mcap",
        "Duration:     4.531 s",
        "Messages:     20",
        "/rosout",
        "Compression:  zstd",
    ):
        assert expected in out


@pytest.mark.parametrize("storage", ["mcap", "sqlite3"])
def test_check_cdr_test_exits_zero(conformance_dir: Path, storage: str) -> None:
    res = run("bag", "check", str(conformance_dir / storage / "cdr_test"))
    assert res.returncode == 0, res.stdout + res.stderr
    assert "OK: 7 decoded, 0 undecodable" in res.stdout


def test_check_fails_when_types_cannot_be_decoded(conformance_dir: Path) -> None:
    res = run("bag", "check", str(conformance_dir / "sqlite3" / "convert_a"))
    assert res.returncode == 1
    assert "FAILED: 0 decoded, 150 undecodable" in res.stdout


def test_reindex_then_info(conformance_dir: Path, tmp_path: Path) -> None:
    bag = tmp_path / "bag"
    shutil.copytree(conformance_dir / "mcap" / "no_metadata_multiple_files", bag)
    for p in [bag, *bag.iterdir()]:
        p.chmod(p.stat().st_mode | stat.S_IWUSR)
    before = run("bag", "info", str(bag))
    assert before.returncode == 2 and "roadloop bag reindex" in before.stderr
    res = run("bag", "reindex", str(bag))
    assert res.returncode == 0, res.stderr
    assert "3177 messages" in res.stdout
    doc = json.loads(run("bag", "info", str(bag), "--json").stdout)
    assert doc["message_count"] == 3177


def _garbage(conformance: Path, tmp: Path) -> Path:
    d = tmp / "garbage"
    d.mkdir()
    (d / "metadata.yaml").write_bytes(random.Random(0).randbytes(300))
    return d


def _truncated(conformance: Path, tmp: Path, storage: str) -> Path:
    d = tmp / f"trunc_{storage}"
    shutil.copytree(conformance / storage / "cdr_test", d)
    f = next(p for p in d.iterdir() if p.suffix in (".mcap", ".db3"))
    f.chmod(0o644)
    f.write_bytes(f.read_bytes()[:1000])
    return d


BAD = {
    "missing path": (lambda c, t: t / "nope", "no such file"),
    "non-bag dir": (lambda c, t: t, "not a bag"),
    "wrong_rmw_test": (lambda c, t: c / "sqlite3" / "wrong_rmw_test", "wrong_format"),
    "garbage metadata": (_garbage, "metadata.yaml"),
    "truncated db3": (lambda c, t: _truncated(c, t, "sqlite3"), "cdr_test_0.db3"),
    "truncated mcap": (lambda c, t: _truncated(c, t, "mcap"), "cdr_test_0.mcap"),
}


@pytest.mark.parametrize("verb", ["info", "check"])
@pytest.mark.parametrize("case", list(BAD))
def test_bad_input_is_one_line_exit_2(conformance_dir: Path, tmp_path: Path, case: str, verb: str) -> None:
    make, needle = BAD[case]
    path = make(conformance_dir, tmp_path)
    before = sorted(p.name for p in path.iterdir()) if path.is_dir() else None
    res = run("bag", verb, str(path))
    assert res.returncode == 2, res.stdout + res.stderr
    lines = res.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("roadloop: error: "), res.stderr
    assert needle in lines[0] and "Traceback" not in res.stderr
    if before is not None:
        assert sorted(p.name for p in path.iterdir()) == before  # nothing written


def test_debug_shows_the_traceback(tmp_path: Path) -> None:
    res = run("--debug", "bag", "info", str(tmp_path / "nope"))
    assert res.returncode != 0
    assert "Traceback" in res.stderr and "BagError" in res.stderr


@pytest.mark.parametrize("verb", [[], ["info"], ["check"], ["reindex"], ["plot"], ["play"]])
def test_help_on_every_verb(verb: list[str]) -> None:
    res = run("bag", *verb, "--help")
    assert res.returncode == 0
    assert "Usage" in res.stdout


def test_usage_error_exits_2() -> None:
    res = run("bag", "info")
    assert res.returncode == 2
    assert "Missing argument" in res.stderr


def test_plot_writes_a_png(conformance_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "rates.png"
    res = run("bag", "plot", str(conformance_dir / "mcap" / "wbag"), "--out", str(out))
    assert res.returncode == 0, res.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    empty = run("bag", "plot", str(conformance_dir / "sqlite3" / "empty_bag"), "--out", str(tmp_path / "e.png"))
    assert empty.returncode == 2 and "no messages" in empty.stderr
    assert not (tmp_path / "e.png").exists()
