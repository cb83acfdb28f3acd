"""SIGKILL of the bridge and of the hub at many points of an upload (real processes), issue 13.

Each case kills one side after `k` chunks were stored, lets the bridge finish, and asserts exact
data: the catalog maps every bag to its sha256, each stored folder re-tarred gives that sha256,
no chunk was ever stored twice (held chunks never change), and nothing is left in the hub's
upload or tmp folders. A few points run in `make test`; the sweep over many points is `soak`.
"""

from __future__ import annotations

import signal
import subprocess
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from roadloop_core.contract.wire import TarStream

from .conftest import TALLY, HubProc, bridge_cmd, write_bag

CHUNK = "65536"


def _events(hub: HubProc) -> dict[str, list[dict[str, Any]]]:
    return {u["id"]: hub.admin_get(f"/v1/uploads/{u['id']}/events") for u in hub.admin_get("/v1/uploads")}


def _stored(hub: HubProc) -> int:
    try:
        return sum(1 for evs in _events(hub).values() for e in evs if e["outcome"] == "stored")
    except Exception:  # the hub is restarting
        return 0


def _wait_for(cond: Any, timeout: float = 120.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.05)


def _hub_log(hub: HubProc) -> str:
    """The hub's log without the access lines: what to read when a case fails."""
    lines = hub.log.read_text(errors="replace").splitlines()
    return "\n".join(line for line in lines if '" 20' not in line)[-6000:]


def _fast_retry_config(tmp: Path) -> Path:
    """bridge.yaml with short backoffs and many attempts: a restarting hub on a loaded machine takes a while."""
    repo_cfg = Path(__file__).resolve().parents[2] / "config" / "bridge.yaml"
    text = repo_cfg.read_text()
    assert "backoff_max_s: 60.0" in text and "max_attempts: 8" in text
    path = tmp / "bridge.yaml"
    text = text.replace("backoff_max_s: 60.0", "backoff_max_s: 1.0").replace("max_attempts: 8", "max_attempts: 200")
    path.write_text(text)
    return path


def _bags(watch: Path, seed: int) -> dict[str, str]:
    watch.mkdir()
    return {f"k{i}": TarStream(write_bag(watch / f"k{i}", seed=seed + i, frames=30)).sha256() for i in range(2)}


def _exact(hub: HubProc, shas: dict[str, str]) -> None:
    assert {r["bag_name"]: r["sha256"] for r in hub.admin_get("/v1/bags")} == shas
    for sha in shas.values():
        assert TarStream(hub.root / "bags" / sha).sha256() == sha  # the stored bytes are the content address
    for upload_id, evs in _events(hub).items():
        per_chunk = Counter(e["idx"] for e in evs if e["outcome"] == "stored")
        assert set(per_chunk.values()) <= {1}, f"{upload_id}: a chunk was stored twice: {per_chunk}"
    assert [p for p in (hub.root / "uploads").iterdir()] == []
    assert list((hub.root / "tmp").iterdir()) == []


def kill_bridge(hub_proc: Any, tmp_path: Path, k: int) -> None:
    hub = hub_proc()
    watch = tmp_path / "rec"
    shas = _bags(watch, 700 + k)
    token = hub.token_file("killed-bridge", tmp_path)
    state = tmp_path / "state"
    cmd = bridge_cmd(watch, hub, token, state, "--once", "--no-models", "--chunk-bytes", CHUNK,
                     "--config", str(_fast_retry_config(tmp_path)))  # fmt: skip
    proc = subprocess.Popen([*cmd, "--bandwidth", "200000"], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _wait_for(lambda: _stored(hub) >= k or proc.poll() is not None)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{done.stderr[-3000:]}\nhub log:\n{_hub_log(hub)}"
    _exact(hub, shas)
    for evs in _events(hub).values():  # the bridge never re-sends a chunk the hub confirmed to it
        assert Counter(e["outcome"] for e in evs)["duplicate"] == 0


def kill_hub(hub_proc: Any, tmp_path: Path, k: int) -> None:
    hub = hub_proc()
    watch = tmp_path / "rec"
    shas = _bags(watch, 800 + k)
    token = hub.token_file("killed-hub", tmp_path)
    cmd = bridge_cmd(watch, hub, token, tmp_path / "state", "--once", "--no-models", "--chunk-bytes", CHUNK,
                     "--config", str(_fast_retry_config(tmp_path)), "--bandwidth", "200000")  # fmt: skip
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _wait_for(lambda: _stored(hub) >= k or proc.poll() is not None)
    hub.stop(kill=True)
    hub.start()  # same root and port: the bridge backs off and carries on
    _out, err = proc.communicate(timeout=300)
    assert proc.returncode == 0, f"{err[-3000:]}\nhub log:\n{_hub_log(hub)}"
    _exact(hub, shas)


# One point each in `make test` (each case starts three or four processes: ~14 s here); the rest in the sweeps.
@pytest.mark.parametrize("k", [5])
def test_bridge_killed_mid_upload(hub_proc: Any, tmp_path: Path, k: int) -> None:
    with TALLY.case("SIGKILL bridge"):
        kill_bridge(hub_proc, tmp_path, k)


@pytest.mark.parametrize("k", [2])
def test_hub_killed_mid_upload(hub_proc: Any, tmp_path: Path, k: int) -> None:
    with TALLY.case("SIGKILL hub"):
        kill_hub(hub_proc, tmp_path, k)


@pytest.mark.soak
@pytest.mark.parametrize("k", [0, 1, 2, 3, 4, 6, 7, 8, 9, 10, 11])
def test_bridge_killed_mid_upload_sweep(hub_proc: Any, tmp_path: Path, k: int) -> None:
    with TALLY.case("SIGKILL bridge (soak)"):
        kill_bridge(hub_proc, tmp_path, k)


@pytest.mark.soak
@pytest.mark.parametrize("k", [0, 1, 3, 4, 5, 6, 7, 8, 9, 10, 11])
def test_hub_killed_mid_upload_sweep(hub_proc: Any, tmp_path: Path, k: int) -> None:
    with TALLY.case("SIGKILL hub (soak)"):
        kill_hub(hub_proc, tmp_path, k)
