"""Uploads against a real hub process: SIGKILL mid-chunk, hub restart, four bridges at once, priority."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

from roadloop_core.contract.wire import TarStream

from .conftest import bridge_cmd

# the console script of this interpreter's environment: CI runs pytest without .venv/bin on PATH
ROADLOOP = str(Path(sys.executable).with_name("roadloop"))

CHUNK = "65536"


def _events(hub: Any) -> dict[str, list[dict[str, Any]]]:
    return {u["id"]: hub.admin_get(f"/v1/uploads/{u['id']}/events") for u in hub.admin_get("/v1/uploads")}


def _stored(hub: Any) -> int:
    return sum(1 for evs in _events(hub).values() for e in evs if e["outcome"] == "stored")


def _wait_for(cond: Any, timeout: float = 300.0) -> None:  # generous: a loaded 2-core machine is slow
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _catalog(hub: Any) -> dict[str, str]:
    return {r["bag_name"]: r["sha256"] for r in hub.admin_get("/v1/bags")}


def test_sigkill_mid_chunk_resumes_without_resending(hub_proc, make_bag, run_bridge, tmp_path: Path) -> None:
    hub = hub_proc()
    watch = tmp_path / "rec"
    watch.mkdir()
    shas = {f"bag{i}": TarStream(make_bag(watch / f"bag{i}", seed=i)).sha256() for i in range(3)}
    token = hub.token_file("car1", tmp_path)
    state = tmp_path / "state"
    # A bandwidth cap stretches every chunk body over several pieces, so the kill lands inside one.
    cmd = bridge_cmd(watch, hub, token, state, "--once", "--no-models", "--chunk-bytes", CHUNK, "--bandwidth", "150000")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: _stored(hub) >= 4)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    before = _events(hub)
    held_before = sum(1 for evs in before.values() for e in evs if e["outcome"] == "stored")
    assert 4 <= held_before < 3 * 6, "the kill must land before everything was sent"
    _wait_for(lambda: any(e["outcome"] == "aborted" for evs in _events(hub).values() for e in evs), 10)
    # ^ the hub saw a chunk body end early: the kill landed mid-chunk

    done = run_bridge(watch, hub, token, state, "--no-models", "--chunk-bytes", CHUNK)
    assert done.returncode == 0, done.stderr
    assert "already on the hub" in done.stdout
    skipped = int(done.stdout.split("chunk(s) sent, ")[1].split(" already")[0])
    assert skipped >= 1  # chunks of the interrupted upload that the hub confirmed were not sent again

    after = _events(hub)
    assert len(after) == 3  # the interrupted upload was resumed, not started again
    for upload_id, evs in after.items():
        outcomes = Counter(e["outcome"] for e in evs)
        assert outcomes["duplicate"] == 0, f"{upload_id}: a confirmed chunk was sent twice"
        per_chunk = Counter(e["idx"] for e in evs if e["outcome"] == "stored")
        assert set(per_chunk.values()) == {1}, per_chunk
    assert _catalog(hub) == shas
    for sha in shas.values():  # stored as plain bag folders, readable by the dataset builder
        assert (hub.root / "bags" / sha / "metadata.yaml").is_file()


def test_hub_restarted_mid_upload(hub_proc, make_bag, tmp_path: Path) -> None:
    hub = hub_proc()
    watch = tmp_path / "rec"
    watch.mkdir()
    shas = {f"b{i}": TarStream(make_bag(watch / f"b{i}", seed=10 + i, frames=24)).sha256() for i in range(2)}
    token = hub.token_file("car2", tmp_path)
    repo_cfg = Path(__file__).resolve().parents[2] / "config" / "bridge.yaml"
    fast_retry = tmp_path / "bridge.yaml"  # retry within ~2 s so the test does not wait on long backoffs
    # ... and keeps trying long enough for a restart on a loaded machine
    text = repo_cfg.read_text().replace("backoff_max_s: 60.0", "backoff_max_s: 2.0")
    fast_retry.write_text(text.replace("max_attempts: 8", "max_attempts: 200"))
    assert "backoff_max_s: 2.0" in fast_retry.read_text() and "max_attempts: 200" in fast_retry.read_text()
    cmd = bridge_cmd(watch, hub, token, tmp_path / "st", "--once", "--no-models", "--chunk-bytes", CHUNK)
    cmd += ["--config", str(fast_retry)]
    proc = subprocess.Popen([*cmd, "--bandwidth", "150000"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _stored(hub) >= 2)
    hub.stop(kill=True)
    time.sleep(1.0)  # the bridge meets a dead hub and backs off
    hub.start()
    _out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    assert _catalog(hub) == shas
    for evs in _events(hub).values():
        assert Counter(e["outcome"] for e in evs)["duplicate"] == 0


def test_four_bridges_at_once_and_dedup(hub_proc, make_bag, tmp_path: Path) -> None:
    hub = hub_proc()
    procs, expected = [], {}
    shared_sha = ""
    for v in range(4):
        watch = tmp_path / f"rec{v}"
        watch.mkdir()
        for i in range(2):
            bag = make_bag(watch / f"run{i}", seed=100 + 10 * v + i, frames=12)
            expected[(f"car{v}", f"run{i}")] = TarStream(bag).sha256()
        if v < 2:  # the same recording on two vehicles: stored once, acknowledged to both
            shared_sha = TarStream(make_bag(watch / "shared", seed=999, frames=12)).sha256()
            expected[(f"car{v}", "shared")] = shared_sha
        token = hub.token_file(f"car{v}", tmp_path)
        cmd = bridge_cmd(watch, hub, token, tmp_path / f"st{v}", "--once", "--no-models", "--chunk-bytes", CHUNK)
        procs.append(subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    for p in procs:
        _, err = p.communicate(timeout=240)
        assert p.returncode == 0, err
    rows = hub.admin_get("/v1/bags")
    assert {(r["vehicle"], r["bag_name"]): r["sha256"] for r in rows} == expected
    stored = sorted(p.name for p in (hub.root / "bags").iterdir())
    assert stored == sorted(set(expected.values()))  # one object per content
    assert all(r["readable"] and r["topics"][0]["count"] == 12 for r in rows)


def test_roadloop_cli_priority_and_catalog(hub_proc, make_bag, tmp_path: Path) -> None:
    """Through the real `roadloop` entry point: a disengagement bag goes first although it is newer."""
    hub = hub_proc()
    watch = tmp_path / "rec"
    watch.mkdir()
    make_bag(watch / "old_plain", seed=1, start_s=1000)
    make_bag(watch / "new_trigger", seed=2, start_s=5000, intervention=True)
    make_bag(watch / "new_tagged", seed=3, start_s=6000)
    (watch / "new_tagged.tags").write_text("disengagement\n")
    unfinished = watch / "recording"
    unfinished.mkdir()
    (unfinished / "recording_0.mcap.active").write_bytes(b"\0" * 2048)  # a bag still being written
    token = hub.token_file("car9", tmp_path)
    args = ["--watch", str(watch), "--hub", hub.url, "--token-file", str(token), "--state", str(tmp_path / "st")]
    done = subprocess.run(
        [ROADLOOP, "bridge", "run", *args, "--once", "--no-models", "--settle", "0", "--quiet"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    ls = subprocess.run([ROADLOOP, "hub", "ls", "--root", str(hub.root), "--json"], capture_output=True, text=True)
    assert ls.returncode == 0, ls.stderr
    rows = json.loads(ls.stdout)
    assert [r["bag_name"] for r in rows] == ["new_trigger", "new_tagged", "old_plain"]
    assert rows[0]["tags"] == ["disengagement"] and rows[1]["tags"] == ["disengagement"]
    assert rows[2]["start_ns"] == 1001 * 1_000_000_000
    assert {r["bag_name"]: r["sha256"] for r in rows}["old_plain"] == TarStream(watch / "old_plain").sha256()
    assert unfinished.is_dir() and "recording" not in {r["bag_name"] for r in rows}
    png = tmp_path / "timeline.png"
    table = subprocess.run(
        [ROADLOOP, "hub", "ls", "--root", str(hub.root), "--plot", str(png)], capture_output=True, text=True
    )
    assert "new_trigger" in table.stdout and "/sensors/camera/front/image:40" in table.stdout
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_daemon_watches_the_folder_and_stops_on_sigterm(hub_proc, make_bag, tmp_path: Path) -> None:
    hub = hub_proc()
    watch = tmp_path / "rec"
    watch.mkdir()
    token = hub.token_file("car5", tmp_path)
    cmd = bridge_cmd(watch, hub, token, tmp_path / "st", "--no-models", "--chunk-bytes", CHUNK, "--poll", "0.3")
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        first = TarStream(make_bag(watch / "first", seed=61, frames=5)).sha256()
        _wait_for(lambda: _catalog(hub).get("first") == first)
        second = TarStream(make_bag(watch / "second", seed=62, frames=5)).sha256()
        _wait_for(lambda: _catalog(hub).get("second") == second)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
