"""The hub's core without HTTP (SQLite): upload edge cases, unsafe tars, unreadable bags, channel history."""

from __future__ import annotations

import hashlib
import io
import tarfile
from pathlib import Path

import pytest

from roadloop_cluster.hub import Hub, HubConfig, Principal, RequestRefused, open_hub
from roadloop_vehicle.bridge.wire import TarStream, chunk_count, chunk_range

CAR = Principal("car1", "vehicle")
OTHER = Principal("car2", "vehicle")
ADMIN = Principal("boss", "admin")
CHUNK = 65536


@pytest.fixture
def hub(tmp_path: Path) -> Hub:
    return open_hub(tmp_path / "hub", HubConfig())


def _send(hub: Hub, who: Principal, name: str, data: bytes, declared: str | None = None) -> dict:
    up = hub.create_upload(
        who, {"bag_name": name, "size": len(data), "sha256": declared or hashlib.sha256(data).hexdigest(),
              "chunk_size": CHUNK}
    )  # fmt: skip
    for i in reversed(range(chunk_count(len(data), CHUNK))):  # any order
        off, n = chunk_range(i, len(data), CHUNK)
        piece = data[off : off + n]
        assert hub.put_chunk(who, up["upload_id"], i, hashlib.sha256(piece).hexdigest(), piece)["stored"]
    return up


def _tar(members: list[tuple[tarfile.TarInfo, bytes]]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for info, data in members:
            info.size = len(data) if info.isreg() else 0
            tar.addfile(info, io.BytesIO(data) if info.isreg() else None)
    return buf.getvalue()


def test_whole_sha_mismatch_resets_the_upload(hub: Hub) -> None:
    data = bytes(range(256)) * 1000
    up = _send(hub, CAR, "bag", data, declared="f" * 64)
    with pytest.raises(RequestRefused, match="whole sha256") as err:
        hub.complete(CAR, up["upload_id"])
    assert err.value.status == 409
    assert hub.upload_status(CAR, up["upload_id"])["have"] == []  # chunks dropped: the bridge starts over


@pytest.mark.parametrize(
    ("name", "kind"),
    [("../evil", tarfile.REGTYPE), ("sub/dir", tarfile.REGTYPE), ("link", tarfile.SYMTYPE), ("dev", tarfile.CHRTYPE)],
)
def test_unsafe_tar_members_refused(hub: Hub, name: str, kind: bytes) -> None:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.linkname = "/etc/passwd" if kind == tarfile.SYMTYPE else ""
    data = _tar([(tarfile.TarInfo("metadata.yaml"), b"x"), (info, b"payload")])
    up = _send(hub, CAR, "bag", data)  # the good member comes first: refusal must not leave it behind
    with pytest.raises(RequestRefused) as err:
        hub.complete(CAR, up["upload_id"])
    assert err.value.status == 422
    assert list((hub.store.bags).iterdir()) == [] and list(hub.store.tmp.iterdir()) == []
    assert not (hub.store.root / "evil").exists()


def test_unreadable_bag_is_kept_and_says_why(hub: Hub, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "metadata.yaml").write_text("not: a rosbag2 metadata\n")
    data = TarStream(folder).read(0, TarStream(folder).size)
    up = _send(hub, CAR, "broken", data)
    done = hub.complete(CAR, up["upload_id"])
    assert done["state"] == "complete" and done["bag"]["readable"] is False and done["bag"]["error"]
    assert (hub.store.bag_dir(done["sha256"]) / "metadata.yaml").is_file()  # nothing recorded is lost
    rows = hub.list_bags(None)
    assert rows[0]["bag_name"] == "broken" and not rows[0]["readable"]


def test_resume_by_key_and_isolation(hub: Hub) -> None:
    data = b"z" * (3 * CHUNK + 5)
    sha = hashlib.sha256(data).hexdigest()
    a = hub.create_upload(CAR, {"bag_name": "b", "size": len(data), "sha256": sha, "chunk_size": CHUNK})
    again = hub.create_upload(CAR, {"bag_name": "b", "size": len(data), "sha256": sha, "chunk_size": CHUNK})
    assert again["upload_id"] == a["upload_id"]  # a bridge that lost its upload id gets the same upload
    with pytest.raises(RequestRefused) as err:
        hub.upload_status(OTHER, a["upload_id"])
    assert err.value.status == 403
    assert hub.upload_status(ADMIN, a["upload_id"])["vehicle"] == "car1"
    piece = data[:CHUNK]
    digest = hashlib.sha256(piece).hexdigest()
    assert hub.put_chunk(CAR, a["upload_id"], 0, digest, piece)["stored"] is True
    assert hub.put_chunk(CAR, a["upload_id"], 0, digest, piece)["stored"] is False  # idempotent
    assert [e["outcome"] for e in hub.chunk_events(ADMIN, a["upload_id"])] == ["stored", "duplicate"]


def test_channels_unknown_and_empty(hub: Hub) -> None:
    with pytest.raises(RequestRefused) as err:
        hub.current("nightly")
    assert err.value.status == 404
    with pytest.raises(RequestRefused, match="no release"):
        hub.current("production")
    with pytest.raises(RequestRefused) as err:
        hub.publish(ADMIN, "production", Path("/nonexistent"))
    assert err.value.status == 503  # no public key configured: nothing can be published


def test_open_upload_cap_and_garbage_collection(tmp_path: Path) -> None:
    hub = open_hub(tmp_path / "hub", HubConfig(max_open_uploads=2))
    body = {"size": 4096, "chunk_size": CHUNK}
    ids = [hub.create_upload(CAR, body | {"bag_name": f"b{i}", "sha256": f"{i}" * 64})["upload_id"] for i in range(2)]
    hub.put_chunk(CAR, ids[0], 0, hashlib.sha256(b"\0" * 4096).hexdigest(), b"\0" * 4096)
    with pytest.raises(RequestRefused) as err:
        hub.create_upload(CAR, body | {"bag_name": "b2", "sha256": "2" * 64})
    assert err.value.status == 429  # a vehicle cannot fill the hub's disk with unfinished uploads
    assert hub.create_upload(OTHER, body | {"bag_name": "b2", "sha256": "2" * 64})["state"] == "open"
    assert hub.collect_garbage(3600.0) == []  # nothing is old yet
    assert sorted(hub.collect_garbage(-1.0)) == sorted([*ids, hub.uploads(OTHER)[0]["id"]])
    assert not hub.store.part_path(ids[0]).exists()
    assert hub.upload_status(CAR, ids[0])["state"] == "abandoned"
    with pytest.raises(RequestRefused, match="abandoned; create a new one"):
        hub.complete(CAR, ids[0])
    assert hub.create_upload(CAR, body | {"bag_name": "b2", "sha256": "2" * 64})["state"] == "open"
