"""No orphans: Ctrl-C (SIGINT), a scheduler's SIGTERM or a SIGKILL sent to `roadloop train` alone takes every
training rank with it (torchrun's handler stops the ranks on SIGINT/SIGTERM; on SIGKILL the kernel kills each
rank through the PR_SET_PDEATHSIG it asked for)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import psutil
import pytest

from tests.support.processes import alive
from tests.support.train_ranks import rank_processes


@pytest.mark.slow
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGKILL], ids=lambda s: s.name)
def test_killing_the_launcher_takes_every_rank_with_it(
    sig: signal.Signals, camera_dataset: Path, write_config: Callable[..., Path], tmp_path: Path
) -> None:
    config = write_config(run={"epochs": 1000, "trace_samples": True})  # far more than the test lets it train
    run = tmp_path / "run"
    cli = [sys.executable, "-m", "roadloop_core.cli.main", "train", "--config", str(config)]
    cli += ["--data", str(camera_dataset), "--out", str(run), "--nproc", "2", "--max-restarts", "0"]
    t0 = time.monotonic()
    proc = subprocess.Popen(cli, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    try:
        launcher = psutil.Process(proc.pid)
        # both ranks have trained a step (each writes its own trace file when it starts training)
        while len(list((run / "trace").glob("samples-*.jsonl")) if (run / "trace").is_dir() else []) < 2:
            assert proc.poll() is None, proc.communicate()[1].decode(errors="replace")[-3000:]
            time.sleep(0.02)
        started_s = time.monotonic() - t0
        ranks = rank_processes(launcher.children(recursive=True))
        assert len(ranks) == 2
        proc.send_signal(sig)  # to the launcher alone, not its process group
        deadline = time.monotonic() + 10 * started_s + 60  # generous: stopping is faster than starting
        while any(alive(r) for r in ranks) or proc.poll() is None:
            assert time.monotonic() < deadline, f"still alive {started_s:.0f} s x 10 after {sig.name}: " + ", ".join(
                f"{r.pid} (parent {r.ppid()})" for r in ranks if alive(r)
            )
            time.sleep(0.05)
        assert proc.returncode != 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        proc.stderr.close() if proc.stderr else None
        for r in _ranks_left(tmp_path):
            r.kill()


def _ranks_left(tmp_path: Path) -> list[psutil.Process]:
    """Ranks of this test's run still alive anywhere (cleanup after a failure, so no orphan outlives it)."""
    left = []
    for p in psutil.process_iter(["cmdline"]):
        cmd = p.info.get("cmdline") or []
        if "roadloop_cluster.train.train" in cmd and any(str(tmp_path) in c for c in cmd):
            left.append(p)
    return left
