"""Episodes over worker processes: the same reports and bags as one process, errors raised in the parent."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from roadloop_core.bag import open_bag
from roadloop_core.registry import TopicRegistry
from roadloop_sim.drivers.expert_labels import ExpertLabeler
from roadloop_sim.errors import SimError
from roadloop_sim.evaluate import evaluate, write_report
from roadloop_sim.highway import HighwayEnvSimulator
from roadloop_sim.parallel import PerProcess, default_jobs, map_episodes, worker_count
from roadloop_sim.record import record_episodes
from roadloop_sim.scenarios import ScenarioSet
from tests.support.processes import alive


@pytest.mark.parametrize(
    ("jobs", "items", "expected"),
    [(1, 8, 1), (2, 8, 2), (4, 3, 3), (2, 1, 1), (3, 0, 1), (0, 100, min(default_jobs(), 100)), (0, 1, 1)],
)
def test_worker_count(jobs: int, items: int, expected: int) -> None:
    assert worker_count(jobs, items) == expected


def test_negative_jobs_is_an_error() -> None:
    with pytest.raises(SimError, match="--jobs"):
        worker_count(-1, 4)


def _square_where(x: int) -> tuple[int, int]:
    return x * x, os.getpid()


def test_results_come_in_order_from_other_processes() -> None:
    out = list(map_episodes(_square_where, list(range(7)), 2))
    assert [r for r, _ in out] == [x * x for x in range(7)]
    assert os.getpid() not in {pid for _, pid in out}
    assert list(map_episodes(_square_where, [3], 2)) == [(9, os.getpid())]  # one item: no pool


def _fail_on_three(x: int) -> int:
    if x == 3:
        raise SimError(f"episode {x}: broken")
    return x


def test_a_workers_error_is_raised_in_the_parent() -> None:
    got: list[int] = []
    with pytest.raises(SimError, match="episode 3: broken"):
        got.extend(map_episodes(_fail_on_three, list(range(6)), 2))
    assert got == [0, 1, 2]


def test_per_process_builds_once_in_each_process() -> None:
    made: list[int] = []
    value = PerProcess(lambda: made.append(os.getpid()) or len(made))
    assert value.here() is None
    assert value.get() == value.get() == 1
    assert value.here() == 1
    pids = {pid for _, pid in map_episodes(lambda _: (value.get(), os.getpid()), [0, 1, 2, 3], 2)}
    assert os.getpid() not in pids
    assert made == [os.getpid()]  # workers' builds happen in their own memory


def test_eval_report_is_the_same_for_any_number_of_workers(
    tmp_path: Path, short_scenarios: ScenarioSet, registry: TopicRegistry
) -> None:
    paths = []
    for jobs in (1, 2):
        report = evaluate(
            "lanekeep", episodes=4, seed=3, scenario_set=short_scenarios, registry=registry, progress=False, jobs=jobs,
            plots=tmp_path / f"plots{jobs}",
        )  # fmt: skip
        paths.append(tmp_path / f"eval{jobs}.json")
        write_report(report, paths[-1])
    assert paths[0].read_bytes() == paths[1].read_bytes()
    assert sorted(p.name for p in (tmp_path / "plots2").iterdir()) == sorted(
        p.name for p in (tmp_path / "plots1").iterdir()
    )


def _bag_bytes(folder: Path) -> dict[str, bytes]:
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def test_dagger_bags_are_the_same_for_any_number_of_workers(
    tmp_path: Path, short_scenarios: ScenarioSet, registry: TopicRegistry
) -> None:
    labeler = ExpertLabeler(short_scenarios.simulation, horizon=6, dt_s=0.5, distro=registry.typestore)
    results = {}
    for jobs in (1, 2):
        done = record_episodes(
            tmp_path / f"j{jobs}", episodes=3, seed=5, driver="lanekeep", scenario_set=short_scenarios,
            registry=registry, progress=False, labeler=labeler, beta=0.3, jobs=jobs,
        )  # fmt: skip
        results[jobs] = [(e.path.name, e.metrics) for e in done]
    assert results[1] == results[2]
    assert _bag_bytes(tmp_path / "j1") == _bag_bytes(tmp_path / "j2")
    with open_bag(tmp_path / "j2" / results[2][0][0]) as bag:
        topics = {m.topic for m in bag.messages()}
    assert registry["expert_command"].name in topics  # the labels are in the bags the workers wrote


def test_a_clash_is_found_before_any_episode_runs(
    tmp_path: Path, short_scenarios: ScenarioSet, registry: TopicRegistry
) -> None:
    plan = record_episodes(
        tmp_path / "probe", episodes=3, seed=2, scenario_set=short_scenarios, registry=registry, progress=False,
        scenarios="racetrack", jobs=2,
    )  # fmt: skip
    out = tmp_path / "out"
    (out / plan[2].path.name).mkdir(parents=True)  # the last episode's bag already exists
    with pytest.raises(SimError, match="already exists"):
        record_episodes(
            out, episodes=3, seed=2, scenario_set=short_scenarios, registry=registry, progress=False,
            scenarios="racetrack", jobs=2,
        )  # fmt: skip
    assert sorted(p.name for p in out.iterdir()) == [plan[2].path.name]


def test_a_given_simulator_cannot_serve_parallel_workers(
    tmp_path: Path, short_scenarios: ScenarioSet, registry: TopicRegistry
) -> None:
    sim = HighwayEnvSimulator(short_scenarios, registry)
    try:
        with pytest.raises(SimError, match="--jobs 2"):
            evaluate("lanekeep", episodes=2, scenario_set=short_scenarios, registry=registry, simulator=sim, jobs=2)
        with pytest.raises(SimError, match="--jobs 2"):
            record_episodes(
                tmp_path, episodes=2, scenario_set=short_scenarios, registry=registry, simulator=sim, jobs=2
            )  # fmt: skip
    finally:
        sim.close()


_ORPHAN_PARENT = r"""
import os, sys, time
from roadloop_sim.parallel import map_episodes

def work(i):
    os.write(1, f"{os.getpid()}\n".encode())  # one write: two workers must not interleave a line
    time.sleep(3600)

list(map_episodes(work, [0, 1], 2))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="needs Linux (prctl PR_SET_PDEATHSIG)")
def test_workers_end_when_their_parent_is_killed() -> None:
    """A stage timeout SIGKILLs `roadloop sim eval`: its workers must not run on, orphaned."""
    proc = subprocess.Popen([sys.executable, "-c", _ORPHAN_PARENT], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    workers = [int(proc.stdout.readline()) for _ in range(2)]
    proc.kill()
    proc.wait()
    deadline = time.monotonic() + 120
    while any(alive(p) for p in workers) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert not any(alive(p) for p in workers), f"workers {workers} outlived their parent"
