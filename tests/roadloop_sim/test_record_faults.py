"""A real `roadloop sim record` killed with SIGKILL at many times, then `bag reindex` and `bag check`.

Recording is deterministic per seed, so a full in-process recording is the reference. After each
kill: every bag with its final name is complete and exactly the reference; every unfinished
`.partial/<bag>` is either refused by `roadloop bag reindex` with one line (exit 2: nothing was
flushed yet) or recovered into a bag that `roadloop bag check` passes and whose messages are
exactly the first N the recorder wrote (its flushed chunks), never a gap, never a changed byte.
A second run into the same folder keeps the killed run's leftover (moved aside, said on stderr)
and records complete bags. Fast cases run in `make test`; the sweep over more kill times is
`make soak`. Both print tried / survived.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from mcap.reader import make_reader

from roadloop_core.bag import open_bag
from roadloop_core.registry import TopicRegistry
from roadloop_sim.record import record_episodes
from roadloop_sim.scenarios import ScenarioSet

ROADLOOP = shutil.which("roadloop", path=str(Path(sys.executable).parent)) or "roadloop"
ARGS = ("--scenarios", "highway_dense", "--episodes", "2", "--seed", "1")
Msg = tuple[str, int, bytes]
# When to kill: (after the unfinished file first grows past its header, i.e. a chunk was flushed?, delay s)
FAST_KILLS = ((True, 0.5),)  # plus the kill before the rerun below
SWEEP_KILLS = tuple((grown, d) for grown in (False, True) for d in (0.0, 0.2, 0.5, 1.0, 2.0, 3.5))


def _env() -> dict[str, str]:
    env = {**os.environ, "COLUMNS": "200"}
    env.pop("ROADLOOP_DEBUG", None)
    return env


def _write_order(bag: Path) -> list[Msg]:
    """The messages of a bag in the order the recorder wrote them (file by file, chunk by chunk)."""
    out: list[Msg] = []
    for f in sorted(bag.glob("*.mcap")):
        with open(f, "rb") as stream:
            for _, channel, message in make_reader(stream).iter_messages(log_time_order=False):
                out.append((channel.topic, message.log_time, bytes(message.data)))
    return out


def _read(bag: Path) -> list[Msg]:
    with open_bag(bag) as reader:
        return [(m.topic, m.timestamp_ns, bytes(m.data)) for m in reader.messages()]


@pytest.fixture(scope="module")
def reference(
    tmp_path_factory: pytest.TempPathFactory, short_scenarios: ScenarioSet, registry: TopicRegistry
) -> dict[str, list[Msg]]:
    out = tmp_path_factory.mktemp("reference")
    done = record_episodes(
        out,
        scenarios="highway_dense",
        episodes=2,
        seed=1,
        scenario_set=short_scenarios,
        registry=registry,
        progress=False,
    )
    return {e.path.name: _write_order(e.path) for e in done}


def _record(out: Path, scenarios_file: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [ROADLOOP, "sim", "record", "--out", str(out), *ARGS, "--scenarios-file", str(scenarios_file)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=_env(),
    )


def _kill_after(child: subprocess.Popen[str], out: Path, when: tuple[bool, float]) -> bool:
    """SIGKILL `delay` s after the first unfinished file appears (or first grows); False if the run finished first."""
    grown, delay = when
    deadline = time.monotonic() + 300
    first: dict[Path, int] = {}
    while time.monotonic() < deadline and child.poll() is None:
        active = sorted((out / ".partial").glob("*/*.active"))
        if active and not grown:
            break
        sizes = {a: a.stat().st_size for a in active if a.exists()}
        if any(a in first and size > first[a] for a, size in sizes.items()):
            break
        first = {**sizes, **first}
        time.sleep(0.02)
    end = time.monotonic() + delay
    while time.monotonic() < end and child.poll() is None:
        time.sleep(0.02)
    if child.poll() is not None:
        return False
    os.kill(child.pid, signal.SIGKILL)
    child.wait(timeout=60)
    return True


def _judge_partial(bag: Path, reference: dict[str, list[Msg]]) -> str:
    name = bag.name.split(".interrupted")[0]
    res = subprocess.run(
        [ROADLOOP, "bag", "reindex", str(bag)], capture_output=True, text=True, timeout=300, env=_env()
    )
    if res.returncode == 2:
        lines = res.stderr.strip().splitlines()
        assert len(lines) == 1 and "Traceback" not in res.stderr, res.stderr
        assert "nothing to reindex" in lines[0] or "no .mcap or .db3 storage files" in lines[0], lines[0]
        return "clean error (nothing flushed)"
    assert res.returncode == 0, res.stdout + res.stderr
    check = subprocess.run(
        [ROADLOOP, "bag", "check", str(bag)], capture_output=True, text=True, timeout=300, env=_env()
    )
    assert check.returncode == 0, check.stdout + check.stderr
    got = _read(bag)
    written = reference[name]
    assert Counter(got) == Counter(written[: len(got)]), f"{bag}: not the first {len(got)} messages written"
    return "exact prefix" if got else "exact (empty)"


def _one_kill(
    out: Path, scenarios_file: Path, when: tuple[bool, float], reference: dict[str, list[Msg]]
) -> Counter[str]:
    tally: Counter[str] = Counter()
    child = _record(out, scenarios_file)
    try:
        killed = _kill_after(child, out, when)
    finally:
        if child.poll() is None:
            child.kill()
        child.wait(timeout=60)
    tally["killed" if killed else "finished before the kill"] += 1
    for final in sorted(p for p in out.iterdir() if p.is_dir() and not p.name.startswith(".")):
        assert _read(final) == sorted(reference[final.name], key=lambda m: m[1]), f"{final} is not complete"
        tally["complete bag"] += 1
    for partial in sorted((out / ".partial").glob("*")) if (out / ".partial").is_dir() else []:
        tally[_judge_partial(partial, reference)] += 1
    return tally


def _kills(
    kills: tuple[tuple[bool, float], ...],
    tmp_path: Path,
    scenarios_file: Path,
    reference: dict[str, list[Msg]],
    say: Any,
) -> Counter[str]:
    tally: Counter[str] = Counter()
    for i, when in enumerate(kills):
        tally += _one_kill(tmp_path / f"run{i}", scenarios_file, when, reference)
        tally["tried"] += 1
        tally["survived"] += 1  # every assertion above held for this kill
    detail = ", ".join(f"{k} {v}" for k, v in sorted(tally.items()) if k not in ("tried", "survived"))
    say(f"fault injection: recorder SIGKILL: {tally['tried']} tried, {tally['survived']} survived ({detail})")
    return tally


@pytest.fixture
def say(capsys: pytest.CaptureFixture[str]) -> Any:
    def line(text: str) -> None:
        with capsys.disabled():
            print(f"\n{text}", end="")

    return line


@pytest.mark.timeout(900)
def test_recorder_killed_then_reindexed_and_rerun(
    tmp_path: Path, short_scenarios_file: Path, reference: dict[str, list[Msg]], say: Any
) -> None:
    tally = _kills(FAST_KILLS, tmp_path, short_scenarios_file, reference, say)
    assert tally["tried"] == len(FAST_KILLS)
    # a second run into the folder of a killed one: the leftover is kept, the new bags are complete
    out = tmp_path / "rerun"
    child = _record(out, short_scenarios_file)
    _kill_after(child, out, (True, 0.0))
    leftovers = {p.name for p in (out / ".partial").glob("*")} if (out / ".partial").is_dir() else set()
    again = _record(out, short_scenarios_file)
    _, err = again.communicate(timeout=600)
    finals = sorted(p.name for p in out.iterdir() if p.is_dir() and not p.name.startswith("."))
    if again.returncode != 0:  # the killed run had finished a bag: record never overwrites it
        assert "already exists" in err and len(err.strip().splitlines()) == 1, err
        return
    assert finals == sorted(reference)
    for name in finals:
        assert _read(out / name) == sorted(reference[name], key=lambda m: m[1])
    for name in leftovers:
        assert (out / ".partial" / f"{name}.interrupted").is_dir() and "kept the unfinished bag" in err


@pytest.mark.soak
@pytest.mark.timeout(3600)
def test_recorder_killed_at_many_times(
    tmp_path: Path, short_scenarios_file: Path, reference: dict[str, list[Msg]], say: Any
) -> None:
    tally = _kills(SWEEP_KILLS, tmp_path, short_scenarios_file, reference, say)
    assert tally["killed"] >= len(SWEEP_KILLS) // 2
