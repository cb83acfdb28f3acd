"""The hub client against a real hub process on loopback: every operation, and its one error mapping."""

from __future__ import annotations

import hashlib
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from roadloop_core.bag import BagWriter
from roadloop_core.bundle import Manifest, TensorSpec, generate_keypair, write_bundle
from roadloop_core.config import config_dir
from roadloop_core.contract.observation import ObservationSpec
from roadloop_core.contract.wire import TarStream
from roadloop_core.errors import HubClientError, HubRefused, HubUnavailable, RoadloopError
from roadloop_core.hub_client import PIECE, HubClient, read_token

CHUNK = 65536


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _token(root: Path, name: str, admin: bool = False) -> str:
    from roadloop_hub.auth import add_token
    from roadloop_hub.sql_catalog import open_catalog

    catalog = open_catalog("", root)
    try:
        return add_token(catalog, name, "admin" if admin else "vehicle")
    finally:
        catalog.close()


class Hub:
    def __init__(self, root: Path, url: str, public_key: Path) -> None:
        self.root, self.url, self.public_key = root, url, public_key
        self.admin = _token(root, "boss", admin=True)
        self.car = _token(root, "car1")


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hub]:
    tmp = tmp_path_factory.mktemp("client")
    root = tmp / "hub"
    root.mkdir()
    priv, pub = generate_keypair(tmp / "keys")
    config = tmp / "hub.yaml"
    config.write_text("hub:\n  max_open_uploads: 2\n")
    port = _port()
    url = f"http://127.0.0.1:{port}"
    cmd = [sys.executable, "-m", "roadloop_hub", "serve", "--root", str(root), "--port", str(port),
           "--public-key", str(pub), "--config", str(config)]  # fmt: skip
    log = open(tmp / "hub.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    try:
        with HubClient(url, timeout_s=2.0) as probe:
            deadline = time.monotonic() + 60
            while True:
                assert proc.poll() is None, (tmp / "hub.log").read_text()
                try:
                    probe.health()
                    break
                except HubUnavailable:
                    assert time.monotonic() < deadline, "hub did not come up"
                    time.sleep(0.1)
        state = Hub(root, url, pub)
        state.signing_key = priv  # type: ignore[attr-defined]
        yield state
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        log.close()


def _bag(path: Path, seed: int) -> TarStream:
    import numpy as np

    from roadloop_core.codec import numpy_to_image

    rng = np.random.default_rng(seed)
    with BagWriter(path, compression="none") as w:
        w.add_topic("/cam", "sensor_msgs/msg/Image")
        for i in range(12):
            img = rng.integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
            w.write_msg("/cam", 1_000_000_000 * (seed + 1) + i, numpy_to_image(img, i, "cam"))
    return TarStream(path)


@pytest.mark.needs("roadloop_hub")
def test_health_needs_no_token(hub: Hub) -> None:
    with HubClient(hub.url) as client:
        assert client.health() == {"ok": True, "db": "sqlite"}


@pytest.mark.needs("roadloop_hub")
def test_upload_round_trip_with_pacing(hub: Hub, tmp_path: Path) -> None:
    stream = _bag(tmp_path / "trip", seed=1)
    sha, digests = stream.digests(CHUNK)
    paced: list[int] = []
    progress: list[int] = []
    with HubClient(hub.url, hub.car, pace=paced.append) as client:
        up = client.create_upload("trip", stream.size, sha, CHUNK, priority=5, tags=["b", "a"])
        assert (up["state"], up["have"], up["tags"], up["priority"]) == ("open", [], ["a", "b"], 5)
        assert client.create_upload("trip", stream.size, sha, CHUNK)["upload_id"] == up["upload_id"]  # resumed
        first = stream.read(0, CHUNK)
        assert client.put_chunk(up["upload_id"], 0, first) == {"stored": True, "state": "open"}
        assert client.put_chunk(up["upload_id"], 0, first, digests[0]) == {"stored": False, "state": "open"}
        assert client.upload_status(up["upload_id"])["have"] == [0]
        report = client.send_missing(up, stream, progress.append, digests)
        assert report["sent"] == up["n_chunks"] - 1 and report["skipped"] == 1
        assert report["result"]["state"] == "complete" and report["result"]["bag"]["sha256"] == sha
        assert sum(progress) == stream.size - CHUNK
        assert [u["bag_name"] for u in client.list_uploads()] == ["trip"]
        bag = client.get_bag(sha)
        assert bag["topics"] == [{"topic": "/cam", "type": "sensor_msgs/msg/Image", "count": 12}]
        assert [b["bag_name"] for b in client.list_bags(tag="a")] == ["trip"] and client.list_bags(tag="zzz") == []
    # every chunk body went through pace(), in pieces of at most PIECE bytes
    assert sum(paced) == 2 * CHUNK + (stream.size - CHUNK) and max(paced) <= PIECE
    with HubClient(hub.url, hub.admin) as admin:
        outcomes = [e["outcome"] for e in admin.chunk_events(up["upload_id"])]
        assert outcomes.count("stored") == up["n_chunks"] and outcomes.count("duplicate") == 1


OBSERVATION = ObservationSpec.from_config(config_dir() / "dataset.yaml")


@pytest.mark.needs("roadloop_hub")
def test_registry_operations_and_ranged_download(hub: Hub, tmp_path: Path) -> None:
    payload = bytes(range(256)) * 1200
    (tmp_path / "p.onnx").write_bytes(payload)
    bundles = [tmp_path / "b1", tmp_path / "b2"]
    for v, folder in enumerate(bundles, start=1):
        spec = (TensorSpec("x", (1, 4)),), (TensorSpec("y", (1, 2)),)
        manifest = Manifest(name="pilot", version=v, inputs=spec[0], outputs=spec[1], observation=OBSERVATION)
        key = hub.signing_key  # type: ignore[attr-defined]
        write_bundle(folder, files={"policy.onnx": tmp_path / "p.onnx"}, manifest=manifest, signing_key=key)
    with HubClient(hub.url, hub.admin) as admin, HubClient(hub.url, hub.car) as car:
        assert car.current("candidate") is None  # no release yet
        rel = admin.publish("candidate", bundles[0])
        assert (rel["name"], rel["version"], rel["seq"]) == ("pilot", 1, 1)
        admin.publish("candidate", bundles[1])
        assert car.current("candidate")["version"] == 2  # type: ignore[index]
        back = admin.rollback("candidate")
        assert (back["version"], back["action"]) == (1, "rollback")
        assert [(h["action"], h["version"]) for h in car.history("candidate")] == [
            ("publish", 1), ("publish", 2), ("rollback", 1)
        ]  # fmt: skip
        dest = tmp_path / "got.onnx"
        dest.write_bytes(payload[:1000])  # a partial download: resumed with Range
        car.download(back["bundle_id"], "policy.onnx", dest, len(payload))
        assert dest.read_bytes() == payload
        with pytest.raises(HubRefused) as err:
            car.rollback("candidate")  # a vehicle token on an admin route
        assert err.value.status == 403
        with pytest.raises(HubRefused, match="channel 'nightly' unknown") as err:
            car.current("nightly")
        assert err.value.status == 404
        with pytest.raises(HubClientError, match="no-such-folder"):
            admin.publish("candidate", tmp_path / "no-such-folder")


@pytest.mark.needs("roadloop_hub")
def test_error_mapping(hub: Hub, tmp_path: Path) -> None:
    with HubClient(hub.url, "rl_not_a_token") as stranger:
        with pytest.raises(HubRefused) as err:
            stranger.list_bags()
        assert err.value.status == 401 and "unknown or revoked token" in str(err.value)
    with HubClient(hub.url, hub.car) as car:
        with pytest.raises(HubRefused) as err:  # 4xx: retrying will not help
            car.create_upload("../escape", 4096, "a" * 64, CHUNK)
        assert err.value.status == 400
        for i in range(2):  # max_open_uploads: 2 in this hub's config
            car.create_upload(f"open{i}", 4096, hashlib.sha256(b"%d" % i).hexdigest(), CHUNK)
        with pytest.raises(HubUnavailable, match="HTTP 429"):  # 429: back off and retry later
            car.create_upload("open2", 4096, "b" * 64, CHUNK)
    nowhere = HubClient(f"http://127.0.0.1:{_port()}", hub.car, timeout_s=2.0)
    with nowhere, pytest.raises(HubUnavailable, match="ConnectError"):  # nothing listening: retry later
        nowhere.health()
    assert issubclass(HubUnavailable, RoadloopError) and issubclass(HubRefused, RoadloopError)


@pytest.mark.parametrize(("text", "error"), [(None, "cannot read the token file"), ("\n", "the token file is empty")])
def test_read_token_names_the_file(tmp_path: Path, text: str | None, error: str) -> None:
    path = tmp_path / "car.token"
    if text is not None:
        path.write_text(text)
    with pytest.raises(HubClientError, match=error) as err:
        read_token(path)
    assert str(path) in str(err.value)
    path.write_text("rl_abc\n")
    assert read_token(path) == "rl_abc"
