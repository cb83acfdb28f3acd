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


def test_recording_in_pieces(tmp_path: Path) -> None:
    q = UploadQueue(tmp_path / "q.db")
    assert q.add_recording("drive", 0, [], 100)
    assert not q.add_recording("drive", 0, [], 100)
    assert q.pending() == []  # nothing finished yet: nothing to send
    assert q.add_piece("drive", "drive_0.mcap") and not q.add_piece("drive", "drive_0.mcap")
    [entry] = q.pending()
    assert entry.name == "drive" and entry.state == "recording" and entry.pieces
    q.set_piece_content("drive", "drive_0.mcap", 10, 20, "b" * 64)
    q.set_piece_upload("drive", "drive_0.mcap", "u1")
    q.confirm_piece("drive", "drive_0.mcap")
    assert q.pending() == []
    assert q.stopped("drive", 100, ["disengagement"], 50) and not q.stopped("drive", 0, [], 0)
    q.close()
    q = UploadQueue(tmp_path / "q.db")  # as after kill -9: everything committed is there
    [entry] = q.pending()
    assert (entry.state, entry.priority, entry.tags, entry.start_ns) == ("queued", 100, ["disengagement"], 50)
    [piece] = q.pieces_of("drive")
    assert (piece.state, piece.size, piece.mtime_ns) == ("confirmed", 10, 20)
    assert (piece.sha256, piece.upload_id) == ("b" * 64, "u1")
    q.requeue_piece("drive", "drive_0.mcap")
    [piece] = q.pieces_of("drive")
    assert (piece.state, piece.sha256, piece.upload_id) == ("queued", None, None)
    q.close()


def test_queue_of_an_older_bridge_gets_the_pieces_column(tmp_path: Path) -> None:
    import sqlite3

    db = tmp_path / "q.db"
    old = sqlite3.connect(db)
    old.execute(
        "CREATE TABLE bags (name TEXT PRIMARY KEY, state TEXT NOT NULL, priority INTEGER NOT NULL, tags TEXT NOT NULL,"
        " start_ns INTEGER NOT NULL, discovered REAL NOT NULL, size INTEGER, sha256 TEXT, files TEXT, upload_id TEXT,"
        " attempts INTEGER NOT NULL DEFAULT 0, last_error TEXT NOT NULL DEFAULT '', confirmed REAL)"
    )
    old.execute(
        "INSERT INTO bags (name, state, priority, tags, start_ns, discovered) VALUES ('b', 'queued', 0, '[]', 1, 0)"
    )
    old.commit()
    old.close()
    q = UploadQueue(db)
    [entry] = q.pending()
    assert entry.name == "b" and not entry.pieces
    q.close()
