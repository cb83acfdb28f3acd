"""The persistent queue: order, state changes and durability across a reopen (as after kill -9)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path

from roadloop_vehicle.bridge.queue import UploadQueue


def test_order_and_states(tmp_path: Path) -> None:
    q = UploadQueue(tmp_path / "q.db")
    assert q.add("plain_old", 0, [], 100)
    assert q.add("plain_new", 0, [], 300)
    assert q.add("trigger", 100, ["disengagement"], 200)
    assert not q.add("trigger", 0, [], 0)  # queued once
    assert [e.name for e in q.pending()] == ["trigger", "plain_old", "plain_new"]
    q.set_content("trigger", 2048, "a" * 64, [("x", 1, 2)])
    q.set_upload("trigger", "u1")
    q.confirm("trigger")
    q.fail("plain_new", "hub said no")
    assert [e.name for e in q.pending()] == ["plain_old"]
    assert q.failed_attempt("plain_old", "down") == 1
    q.close()
    q = UploadQueue(tmp_path / "q.db")
    t = q.get("trigger")
    assert t is not None and t.state == "confirmed" and t.sha256 == "a" * 64 and t.files == [["x", 1, 2]]
    assert q.get("plain_new").last_error == "hub said no"  # type: ignore[union-attr]
    q.close()


def test_survives_sigkill(tmp_path: Path) -> None:
    """A process killed right after a state change leaves that change on disk."""
    db = tmp_path / "q.db"
    code = (
        "import os, sys, time\n"
        "from pathlib import Path\n"
        "from roadloop_vehicle.bridge.queue import UploadQueue\n"
        f"q = UploadQueue(Path({str(db)!r}))\n"
        "q.add('bag', 5, ['t'], 1)\n"
        "q.confirm('bag')\n"
        "print('ready', flush=True)\n"
        "time.sleep(60)\n"
    )
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    q = UploadQueue(db)
    entry = q.get("bag")
    assert entry is not None and entry.state == "confirmed" and entry.tags == ["t"]
    q.close()
