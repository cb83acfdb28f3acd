"""Disk policy with a real hub: free only confirmed bags, oldest first, only over quota; report pressure."""

from __future__ import annotations

import json
import shutil
from dataclasses import replace
from pathlib import Path

from roadloop_vehicle.bridge import Bridge, BridgeConfig
from roadloop_vehicle.bridge.scanner import bag_size


def _bridge(cfg: BridgeConfig, watch: Path, hub, token: Path, state: Path) -> Bridge:
    return Bridge(cfg, watch, hub.url, token.read_text().strip(), state, sleep=lambda s: None)


def _last_diag(state: Path) -> dict:
    return json.loads((state / "diagnostics.jsonl").read_text().splitlines()[-1])


def test_frees_confirmed_oldest_first_never_unconfirmed(hub_proc, make_bag, tmp_path: Path) -> None:
    hub = hub_proc()
    watch, state = tmp_path / "rec", tmp_path / "state"
    watch.mkdir()
    for i, start in enumerate([3000, 1000, 2000]):
        make_bag(watch / f"bag{i}", seed=i, start_s=start)  # age order: bag1, bag2, bag0
    (watch / "bag1.tags").write_text("night\n")
    unfinished = watch / "live"
    unfinished.mkdir()
    (unfinished / "live_0.mcap.active").write_bytes(b"\0" * 300_000)
    one = bag_size(watch / "bag0")
    quota = 2 * one + 300_000 + 1000  # room for all but one bag
    cfg = replace(BridgeConfig(), settle_s=0.0, chunk_bytes=65536, quota_bytes=quota, pull_models=False)
    token = hub.token_file("car1", tmp_path)
    bridge = _bridge(cfg, watch, hub, token, state)
    report = bridge.run_once()
    bridge.close()
    assert sorted(report.uploaded) == ["bag0", "bag1", "bag2"]
    assert report.deleted == ["bag1"]  # the oldest recording, and only as much as the quota needs
    assert sorted(p.name for p in watch.iterdir()) == ["bag0", "bag2", "live"]  # bag1.tags went with it
    assert (unfinished / "live_0.mcap.active").is_file()  # never touched: still being written
    assert _last_diag(state)["status"][0]["level"] == 1  # close to the quota: WARN

    # The hub goes away; new recordings pile up beyond the quota: nothing unconfirmed is deleted.
    hub.stop()
    for i in range(3, 6):
        make_bag(watch / f"bag{i}", seed=i, start_s=100 + i)
    cfg = replace(cfg, max_attempts=2, backoff_base_s=0.01, backoff_max_s=0.02)
    bridge = _bridge(cfg, watch, hub, token, state)
    report = bridge.run_once()
    bridge.close()
    assert report.uploaded == [] and sorted(report.left) == ["bag3", "bag4", "bag5"]
    assert {"bag3", "bag4", "bag5"} <= {p.name for p in watch.iterdir()}
    assert report.deleted == ["bag2", "bag0"]  # confirmed ones go, oldest first, to make room
    diag = _last_diag(state)["status"]
    assert diag[0]["level"] == 2 and "nothing deleted" in diag[0]["message"]
    assert int(diag[0]["values"]["unconfirmed_bytes"]) > 3 * one
    assert diag[1]["level"] == 1 and "ConnectError" in diag[1]["message"]

    # A queued bag removed by hand is reported as failed, not retried forever.
    shutil.rmtree(watch / "bag3")
    bridge = _bridge(cfg, watch, hub, token, state)
    report = bridge.run_once()
    entry = bridge.queue.get("bag3")
    bridge.close()
    assert "bag3" in report.failed and entry is not None and "gone" in entry.last_error
