"""A recording still being written ships split by split to a real hub, recorded the way Humble's and Jazzy's
rosbag2 write it (tests/fleet/recorders.py): every finished split at once, metadata.yaml and the assembly at stop."""

from __future__ import annotations

import hashlib
import signal
import subprocess
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import pytest

from roadloop_core.bag import open_bag
from roadloop_core.contract.wire import TarStream
from roadloop_vehicle.bridge import Bridge, BridgeConfig
from roadloop_vehicle.bridge.queue import UploadQueue

from .conftest import bridge_cmd, upload_bytes
from .recorders import CAMERA, SplitRecorder

CHUNK = 65536


def _bridge(cfg: BridgeConfig, watch: Path, hub: Any, token: Path, state: Path) -> Bridge:
    return Bridge(cfg, watch, hub.url, token.read_text().strip(), state, sleep=lambda s: None)


def _uploads(hub: Any) -> list[dict[str, Any]]:
    return list(hub.admin_get("/v1/uploads"))


def _events(hub: Any) -> dict[str, list[dict[str, Any]]]:
    return {u["id"]: hub.admin_get(f"/v1/uploads/{u['id']}/events") for u in _uploads(hub)}


def _pieces_on_hub(hub: Any, name: str) -> list[str]:
    done = [u for u in _uploads(hub) if u["bag_name"] == name and u["state"] == "complete"]
    return sorted(u["piece"] for u in done if u["piece"])


@pytest.mark.parametrize("distro", ["humble", "jazzy"])
def test_splits_ship_while_recording_and_the_hub_assembles_at_stop(hub_proc, tmp_path: Path, distro: str) -> None:
    hub = hub_proc()
    watch, state = tmp_path / "rec", tmp_path / "state"
    watch.mkdir()
    rec = SplitRecorder(watch, tmp_path / "staging", "drive", distro, splits=4, seed=3)
    # quota 0: anything confirmed may be freed at once, so nothing unconfirmed may ever be deleted
    cfg = replace(
        BridgeConfig(), settle_s=0.0, chunk_bytes=CHUNK, quota_bytes=0, pull_models=False, recording_distro=distro
    )
    bridge = _bridge(cfg, watch, hub, hub.token_file("car1", tmp_path), state)
    try:
        rec.start()
        report = bridge.run_once()
        assert report.pieces == [] and report.uploaded == [] and _uploads(hub) == []  # the only split is live

        rec.split()
        assert (rec.folder / "metadata.yaml").is_file() is (distro == "jazzy")  # Jazzy: metadata mid-recording
        report = bridge.run_once()
        assert report.pieces == ["drive/drive_0.mcap"] and report.uploaded == [] and report.deleted == []
        assert _pieces_on_hub(hub, "drive") == ["drive_0.mcap"]
        assert hub.admin_get("/v1/bags") == []  # a piece is no bag of its own
        assert bridge.queue.get("drive").state == "recording"

        rec.split()
        rec.split()
        report = bridge.run_once()
        assert report.pieces == ["drive/drive_1.mcap", "drive/drive_2.mcap"] and report.uploaded == []
        assert rec.folder.is_dir() and hub.admin_get("/v1/bags") == []

        rec.stop()
        local = TarStream(rec.folder)
        whole_sha, whole_size = local.sha256(), local.size
        report = bridge.run_once()
        assert report.pieces == ["drive/drive_3.mcap", "drive/metadata.yaml"]
        assert report.uploaded == ["drive"]
        assert report.deleted == ["drive"] and not rec.folder.exists()  # freed only once the hub confirmed it
    finally:
        bridge.close()

    rows = hub.admin_get("/v1/bags")
    assert [(r["vehicle"], r["bag_name"]) for r in rows] == [("car1", "drive")]
    row = rows[0]
    # the same content address a whole upload of the finished folder gets
    assert (row["sha256"], row["size"]) == (whole_sha, whole_size)
    assert row["readable"] and row["message_count"] == rec.messages
    assert row["topics"] == [{"topic": CAMERA, "type": "sensor_msgs/msg/Image", "count": rec.messages}]
    stored = hub.root / "bags" / whole_sha
    assert sorted(p.name for p in stored.iterdir()) == sorted([*rec.files, "metadata.yaml"])
    with open_bag(stored) as bag:
        assert sum(1 for _ in bag.messages()) == rec.messages
    for name in rec.files:  # byte for byte what was recorded
        assert (stored / name).read_bytes() == (rec.source / name).read_bytes()
    # every split travelled once: one upload per file, each chunk stored once, none sent twice
    pieces = [u for u in _uploads(hub) if u["piece"]]
    assert sorted(u["piece"] for u in pieces) == sorted([*rec.files, "metadata.yaml"])
    for upload_id, evs in _events(hub).items():
        outcomes = Counter(e["outcome"] for e in evs)
        assert outcomes["duplicate"] == 0, upload_id
        assert set(Counter(e["idx"] for e in evs if e["outcome"] == "stored").values()) <= {1}


def test_kill_9_mid_piece_resumes_it(hub_proc, tmp_path: Path) -> None:
    """The bridge killed inside a piece's upload: the queue (SQLite) survives, the rerun resumes the same upload
    and sends only the chunks the hub does not hold; then the rest ships and the hub assembles the bag."""
    hub = hub_proc()
    watch, state = tmp_path / "rec", tmp_path / "state"
    watch.mkdir()
    rec = SplitRecorder(watch, tmp_path / "staging", "long", "humble", splits=3, seed=7)
    rec.start()
    rec.split()
    rec.split()  # splits 0 and 1 finished, 2 being written
    token = hub.token_file("car2", tmp_path)
    base = ["--once", "--no-models", "--chunk-bytes", str(CHUNK), "--recording-distro", "humble"]
    cmd = bridge_cmd(watch, hub, token, state, *base, "--bandwidth", "60000")
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stored() -> int:
        return sum(1 for evs in _events(hub).values() for e in evs if e["outcome"] == "stored")

    deadline = time.monotonic() + 300
    while stored() < 1:
        assert time.monotonic() < deadline and proc.poll() is None, "the bridge never stored a chunk"
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert _pieces_on_hub(hub, "long") == []  # killed inside the first piece

    done = subprocess.run(bridge_cmd(watch, hub, token, state, *base), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "2 piece(s)" in done.stdout and "uploaded 0 bag(s)" in done.stdout
    assert _pieces_on_hub(hub, "long") == ["long_0.mcap", "long_1.mcap"]
    assert len(_uploads(hub)) == 2  # the interrupted upload was resumed, not started again
    queue = UploadQueue(state / "queue.db")
    shipped = [(p.file, p.state) for p in queue.pieces_of("long")]
    assert shipped == [("long_0.mcap", "confirmed"), ("long_1.mcap", "confirmed")]
    queue.close()

    rec.stop()
    done = subprocess.run(bridge_cmd(watch, hub, token, state, *base), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr
    [row] = hub.admin_get("/v1/bags")
    assert row["sha256"] == TarStream(rec.folder).sha256() and row["message_count"] == rec.messages
    for upload_id, evs in _events(hub).items():
        assert set(Counter(e["idx"] for e in evs if e["outcome"] == "stored").values()) <= {1}, upload_id


def test_pieces_sent_again_to_a_hub_that_lacks_them(hub_proc, tmp_path: Path) -> None:
    """The car is pointed at another hub mid-recording: the assembly there finds no pieces (409), the bridge
    sends them again and the new hub assembles the bag; nothing is deleted before that."""
    first, second = hub_proc(name="hub_a"), hub_proc(name="hub_b")
    watch, state = tmp_path / "rec", tmp_path / "state"
    watch.mkdir()
    rec = SplitRecorder(watch, tmp_path / "staging", "move", "jazzy", splits=3, seed=11)
    cfg = replace(BridgeConfig(), settle_s=0.0, chunk_bytes=CHUNK, quota_bytes=0, pull_models=False)
    rec.start()
    rec.split()
    rec.split()
    bridge = _bridge(cfg, watch, first, first.token_file("car5", tmp_path), state)
    assert bridge.run_once().pieces == ["move/move_0.mcap", "move/move_1.mcap"]
    bridge.close()
    rec.stop()
    bridge = _bridge(cfg, watch, second, second.token_file("car5", tmp_path), state)
    try:
        report = bridge.run_once()
        assert report.uploaded == ["move"] and report.deleted == ["move"], report
        assert sorted(set(report.pieces)) == [  # the last two were sent before the 409, then all again
            "move/metadata.yaml",
            "move/move_0.mcap",
            "move/move_1.mcap",
            "move/move_2.mcap",
        ]
    finally:
        bridge.close()
    [row] = second.admin_get("/v1/bags")
    assert row["bag_name"] == "move" and row["message_count"] == rec.messages
    assert first.admin_get("/v1/bags") == []


def _piece(c: httpx.Client, name: str, folder: Path, file: str) -> str:
    stream = TarStream(folder, only=[file])
    data = stream.read(0, stream.size)
    sha = hashlib.sha256(data).hexdigest()
    body = {"bag_name": name, "size": len(data), "sha256": sha, "chunk_size": CHUNK, "piece": file}
    r = c.post("/v1/uploads", json=body)
    assert r.status_code == 201, r.text
    up = r.json()
    for i in range(int(up["n_chunks"])):
        part = data[i * CHUNK : (i + 1) * CHUNK]
        r = c.put(f"/v1/uploads/{up['upload_id']}/chunks/{i}", content=part,
                  headers={"X-Chunk-Sha256": hashlib.sha256(part).hexdigest()})  # fmt: skip
        assert r.status_code == 200, r.text
    r = c.post(f"/v1/uploads/{up['upload_id']}/complete")
    assert r.status_code == 200, r.text
    return sha


def test_hub_refuses_what_does_not_make_the_recording(hub_proc, tmp_path: Path) -> None:
    hub = hub_proc()
    rec = SplitRecorder(tmp_path / "rec", tmp_path / "staging", "trip", "jazzy", splits=2, seed=5)
    rec.start()
    rec.split()
    rec.stop()
    car, other = hub.token("car3"), hub.token("car4")
    with hub.client(car) as c, hub.client(other) as o:
        shas = {f: _piece(c, "trip", rec.folder, f) for f in [*rec.files, "metadata.yaml"]}
        # a piece whose tar holds two files is refused for good (not the one file it declares)
        two = TarStream(rec.folder, only=rec.files)
        data = two.read(0, two.size)
        sha = hashlib.sha256(data).hexdigest()
        r = c.post("/v1/uploads", json={"bag_name": "trip", "size": len(data), "sha256": sha, "chunk_size": CHUNK,
                                        "piece": rec.files[0]})  # fmt: skip
        assert r.status_code == 201, r.text
        up = r.json()
        for i in range(int(up["n_chunks"])):
            part = data[i * CHUNK : (i + 1) * CHUNK]
            c.put(f"/v1/uploads/{up['upload_id']}/chunks/{i}", content=part,
                  headers={"X-Chunk-Sha256": hashlib.sha256(part).hexdigest()})  # fmt: skip
        r = c.post(f"/v1/uploads/{up['upload_id']}/complete")
        assert r.status_code == 422 and "exactly its one file" in r.json()["detail"]

        no_meta = {f: shas[f] for f in rec.files}
        r = c.post("/v1/recordings/trip", json={"pieces": no_meta})
        assert r.status_code == 400 and "metadata.yaml" in r.json()["detail"]
        short = {rec.files[0]: shas[rec.files[0]], "metadata.yaml": shas["metadata.yaml"]}
        r = c.post("/v1/recordings/trip", json={"pieces": short})
        assert r.status_code == 422 and f"names {rec.files[1]}, which no piece carries" in r.json()["detail"]
        r = o.post("/v1/recordings/trip", json={"pieces": shas})  # another vehicle's pieces
        assert r.status_code == 409 and "is not on the hub" in r.json()["detail"]
        r = c.post("/v1/recordings/trip", json={"pieces": {**shas, rec.files[0]: "0" * 64}})
        assert r.status_code == 409
        extra = tmp_path / "extra"  # a whole-bag upload under the recording's name is no piece of it
        extra.mkdir()
        (extra / "trip_9.mcap").write_bytes((rec.folder / rec.files[0]).read_bytes() + b"x")
        whole = TarStream(extra)
        _, answer = upload_bytes(c, "trip", whole.read(0, whole.size))
        assert answer.status_code == 200, answer.text
        r = c.post("/v1/recordings/trip", json={"pieces": {**shas, "trip_9.mcap": whole.sha256()}})
        assert r.status_code == 409 and "trip_9.mcap" in r.json()["detail"]
        assert [r["sha256"] for r in hub.admin_get("/v1/bags")] == [whole.sha256()]  # only the whole upload

        r = c.post("/v1/recordings/trip", json={"pieces": shas, "tags": ["night"]})
        assert r.status_code == 200, r.text
        first = r.json()
        assert first["sha256"] == TarStream(rec.folder).sha256() and first["bag"]["message_count"] == rec.messages
        again = c.post("/v1/recordings/trip", json={"pieces": shas, "tags": ["night"]}).json()  # idempotent
        assert (again["sha256"], again["upload_id"]) == (first["sha256"], first["upload_id"])
    rows = [r for r in hub.admin_get("/v1/bags") if r["sha256"] == first["sha256"]]
    assert [(r["bag_name"], r["tags"], r["readable"]) for r in rows] == [("trip", ["night"], True)]
