"""The hub's services without HTTP (SQLite): upload edge cases, unsafe tars, unreadable bags, channel history."""

from __future__ import annotations

import hashlib
import io
import os
import tarfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from roadloop_core.bag import BagWriter
from roadloop_core.codec import numpy_to_image
from roadloop_core.contract.wire import ProofChallenge, TarStream, chunk_count, chunk_range
from roadloop_hub import Hub, HubConfig, Principal, RequestRefused, open_hub
from roadloop_hub.uploads import PROOF_REFUSED

CAR = Principal("car1", "vehicle")
OTHER = Principal("car2", "vehicle")
ADMIN = Principal("boss", "admin")
CHUNK = 65536


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    hub = open_hub(tmp_path / "hub", HubConfig())
    yield hub
    hub.close()


def _send(hub: Hub, who: Principal, name: str, data: bytes, declared: str | None = None) -> dict:
    up = hub.uploads.create(
        who, {"bag_name": name, "size": len(data), "sha256": declared or hashlib.sha256(data).hexdigest(),
              "chunk_size": CHUNK}
    )  # fmt: skip
    for i in reversed(range(chunk_count(len(data), CHUNK))):  # any order
        off, n = chunk_range(i, len(data), CHUNK)
        piece = data[off : off + n]
        assert hub.uploads.put_chunk(who, up["upload_id"], i, hashlib.sha256(piece).hexdigest(), piece)["stored"]
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
        hub.uploads.complete(CAR, up["upload_id"])
    assert err.value.status == 409
    assert hub.uploads.status(CAR, up["upload_id"])["have"] == []  # chunks dropped: the bridge starts over


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
        hub.uploads.complete(CAR, up["upload_id"])
    assert err.value.status == 422
    assert list((hub.store.bags).iterdir()) == [] and list(hub.store.tmp.iterdir()) == []
    assert not (hub.store.root / "evil").exists()


def test_unreadable_bag_is_kept_and_says_why(hub: Hub, tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "metadata.yaml").write_text("not: a rosbag2 metadata\n")
    data = TarStream(folder).read(0, TarStream(folder).size)
    up = _send(hub, CAR, "broken", data)
    done = hub.uploads.complete(CAR, up["upload_id"])
    assert done["state"] == "complete" and done["bag"]["readable"] is False and done["bag"]["error"]
    assert (hub.store.bag_dir(done["sha256"]) / "metadata.yaml").is_file()  # nothing recorded is lost
    rows = hub.bags.list_bags(None)
    assert rows[0]["bag_name"] == "broken" and not rows[0]["readable"]


def test_resume_by_key_and_isolation(hub: Hub) -> None:
    data = b"z" * (3 * CHUNK + 5)
    sha = hashlib.sha256(data).hexdigest()
    a = hub.uploads.create(CAR, {"bag_name": "b", "size": len(data), "sha256": sha, "chunk_size": CHUNK})
    again = hub.uploads.create(CAR, {"bag_name": "b", "size": len(data), "sha256": sha, "chunk_size": CHUNK})
    assert again["upload_id"] == a["upload_id"]  # a bridge that lost its upload id gets the same upload
    with pytest.raises(RequestRefused) as err:
        hub.uploads.status(OTHER, a["upload_id"])
    assert err.value.status == 403
    assert hub.uploads.status(ADMIN, a["upload_id"])["vehicle"] == "car1"
    piece = data[:CHUNK]
    digest = hashlib.sha256(piece).hexdigest()
    assert hub.uploads.put_chunk(CAR, a["upload_id"], 0, digest, piece)["stored"] is True
    assert hub.uploads.put_chunk(CAR, a["upload_id"], 0, digest, piece)["stored"] is False  # idempotent
    assert [e["outcome"] for e in hub.uploads.events(ADMIN, a["upload_id"])] == ["stored", "duplicate"]


def test_channels_unknown_and_empty(hub: Hub) -> None:
    with pytest.raises(RequestRefused) as err:
        hub.registry.current("nightly")
    assert err.value.status == 404
    with pytest.raises(RequestRefused, match="no release"):
        hub.registry.current("production")
    with pytest.raises(RequestRefused) as err:
        hub.registry.publish(ADMIN, "production", Path("/nonexistent"))
    assert err.value.status == 503  # no public key configured: nothing can be published


def test_open_upload_cap_and_garbage_collection(tmp_path: Path) -> None:
    hub = open_hub(tmp_path / "hub", HubConfig(max_open_uploads=2))
    body = {"size": 4096, "chunk_size": CHUNK}
    ids = [hub.uploads.create(CAR, body | {"bag_name": f"b{i}", "sha256": f"{i}" * 64})["upload_id"] for i in range(2)]
    hub.uploads.put_chunk(CAR, ids[0], 0, hashlib.sha256(b"\0" * 4096).hexdigest(), b"\0" * 4096)
    with pytest.raises(RequestRefused) as err:
        hub.uploads.create(CAR, body | {"bag_name": "b2", "sha256": "2" * 64})
    assert err.value.status == 429  # a vehicle cannot fill the hub's disk with unfinished uploads
    assert hub.uploads.create(OTHER, body | {"bag_name": "b2", "sha256": "2" * 64})["state"] == "open"
    assert hub.uploads.collect_garbage(3600.0) == []  # nothing is old yet
    assert sorted(hub.uploads.collect_garbage(-1.0)) == sorted([*ids, hub.uploads.list_uploads(OTHER)[0]["id"]])
    assert not hub.store.upload_dir(ids[0]).exists()
    assert hub.uploads.status(CAR, ids[0])["state"] == "abandoned"
    with pytest.raises(RequestRefused, match="abandoned; create a new one"):
        hub.uploads.complete(CAR, ids[0])
    assert hub.uploads.create(CAR, body | {"bag_name": "b2", "sha256": "2" * 64})["state"] == "open"


def test_an_abandoned_upload_is_not_resumed(hub: Hub) -> None:
    data = b"q" * (2 * CHUNK)
    body = {"bag_name": "late", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "chunk_size": CHUNK}
    first = hub.uploads.create(CAR, body)["upload_id"]
    assert hub.uploads.collect_garbage(-1.0) == [first]
    again = hub.uploads.create(CAR, body)  # the bridge comes back after the hub's gc: a new upload, not the dead one
    assert again["upload_id"] != first and again["state"] == "open" and again["deduplicated"] is False
    for i in range(2):
        piece = data[i * CHUNK : (i + 1) * CHUNK]
        hub.uploads.put_chunk(CAR, again["upload_id"], i, hashlib.sha256(piece).hexdigest(), piece)
    assert hub.uploads.status(CAR, again["upload_id"])["have"] == [0, 1]
    with pytest.raises(RequestRefused, match="abandoned; create a new one"):
        hub.uploads.complete(CAR, first)


def test_complete_again_after_a_crash_between_storing_and_cataloging(hub: Hub, tmp_path: Path) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "metadata.yaml").write_text("x: 1\n")
    stream = TarStream(folder)
    data = stream.read(0, stream.size)
    up = _send(hub, CAR, "b", data)
    held = hub.store.held(up["upload_id"], len(data), CHUNK)
    work, _ = hub.store.unpack_upload(held, stream.sha256(), "test")
    hub.store.install_bag(work, stream.sha256())  # the hub died right after this, before the catalog commit
    done = hub.uploads.complete(CAR, up["upload_id"])  # the bridge retries: the chunks are still there
    assert done["state"] == "complete" and done["bag"]["sha256"] == stream.sha256()
    assert [r["bag_name"] for r in hub.bags.list_bags(None)] == ["b"]


def test_dedup_across_vehicles_and_names(hub: Hub, tmp_path: Path) -> None:
    folder = tmp_path / "b"
    folder.mkdir()
    (folder / "metadata.yaml").write_text("x: 1\n")
    data = TarStream(folder).read(0, TarStream(folder).size)
    sha = hashlib.sha256(data).hexdigest()
    hub.uploads.complete(CAR, _send(hub, CAR, "mine", data)["upload_id"])
    other = hub.uploads.create(OTHER, {"bag_name": "theirs", "size": len(data), "sha256": sha, "chunk_size": CHUNK})
    assert other["state"] == "open" and other["deduplicated"] is False  # the same answer as for new content
    answer = ProofChallenge.from_json(other["proof"]).answer(lambda off, n: data[off : off + n])
    done = hub.uploads.prove(OTHER, other["upload_id"], {"sha256": answer})
    assert done["state"] == "complete" and done["deduplicated"] is True and done["have"] == [0]
    assert [(r["vehicle"], r["bag_name"]) for r in hub.bags.list_bags(ADMIN)] == [("car1", "mine"), ("car2", "theirs")]
    assert [r["bag_name"] for r in hub.bags.list_bags(OTHER)] == ["theirs"]  # a vehicle sees only its own
    rec = hub.bags.get_bag(OTHER, sha)
    assert [(u["vehicle"], u["bag_name"], u["tags"]) for u in rec["uploads"]] == [("car2", "theirs", [])]
    assert len(list(hub.store.bags.iterdir())) == 1  # stored once


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("channels", ["Prod"], "channel name"),
        ("channels", [], "at least one channel"),
        ("max_chunk_bytes", 1024, "max_chunk_bytes"),
        ("max_open_uploads", 0, "max_open_uploads"),
    ],
)
def test_config_refuses_settings_that_cannot_work(field: str, value: object, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        HubConfig(**{field: value})  # type: ignore[arg-type]


def _bag_bytes(tmp_path: Path, text: str = "x: 1\n") -> bytes:
    folder = tmp_path / "bag"
    folder.mkdir(exist_ok=True)
    (folder / "metadata.yaml").write_text(text)
    return TarStream(folder).read(0, TarStream(folder).size)


def test_a_held_chunk_never_changes(hub: Hub) -> None:
    data = os.urandom(3 * CHUNK)
    up = _send(hub, CAR, "bag", data)
    held = hub.store.held(up["upload_id"], len(data), CHUNK)
    before = held.read_chunk(1)
    evil = bytearray(before)
    evil[7] ^= 1
    for declared in ["0" * 64, hashlib.sha256(evil).hexdigest()]:
        with pytest.raises(RequestRefused, match="held chunks never change") as err:
            hub.uploads.put_chunk(CAR, up["upload_id"], 1, declared, bytes(evil))
        assert err.value.status == 409
    assert held.read_chunk(1) == before and held.sha256() == hashlib.sha256(data).hexdigest()


def test_a_reader_crash_keeps_the_bytes_and_completes(hub: Hub, tmp_path: Path, monkeypatch) -> None:
    """The wedge of issue 13: a non-RoadloopError while reading the bag left the upload open, its folder
    moved and its part file gone, and every retry failed. Now the bag is kept as unreadable, once."""
    import roadloop_hub.bags as bags_module

    def boom(*_: object, **__: object) -> None:
        raise MemoryError("the reader blew up")

    monkeypatch.setattr(bags_module, "open_bag", boom)
    data = _bag_bytes(tmp_path)
    up = _send(hub, CAR, "b", data)
    done = hub.uploads.complete(CAR, up["upload_id"])
    assert done["state"] == "complete" and done["bag"]["readable"] is False
    assert "MemoryError: the reader blew up" in done["bag"]["error"]
    assert hub.uploads.complete(CAR, up["upload_id"])["state"] == "complete"  # a retry is answered the same


def test_a_failed_store_leaves_the_upload_retryable(hub: Hub, tmp_path: Path, monkeypatch) -> None:
    data = _bag_bytes(tmp_path)
    up = _send(hub, CAR, "b", data)
    real = hub.store.install_bag

    def full_disk(*_: object) -> Path:
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(hub.store, "install_bag", full_disk)
    with pytest.raises(RequestRefused, match="No space left on device") as err:
        hub.uploads.complete(CAR, up["upload_id"])
    assert err.value.status == 503
    assert hub.uploads.status(CAR, up["upload_id"])["state"] == "open" and list(hub.store.tmp.iterdir()) == []
    monkeypatch.setattr(hub.store, "install_bag", real)
    done = hub.uploads.complete(CAR, up["upload_id"])
    assert done["state"] == "complete" and done["bag"]["sha256"] == hashlib.sha256(data).hexdigest()


def test_a_refused_object_fails_the_upload_cleanly(hub: Hub, tmp_path: Path) -> None:
    data = _bag_bytes(tmp_path, "a: &a [x, x]\nb: *b\n")  # an alias to an anchor that does not exist
    up = _send(hub, CAR, "b", data)
    with pytest.raises(RequestRefused, match=r"metadata\.yaml") as err:
        hub.uploads.complete(CAR, up["upload_id"])
    assert err.value.status == 422
    status = hub.uploads.status(CAR, up["upload_id"])
    assert status["state"] == "failed" and "metadata.yaml" in status["error"]
    assert not hub.store.upload_dir(up["upload_id"]).exists() and list(hub.store.bags.iterdir()) == []
    with pytest.raises(RequestRefused, match="was refused") as err:
        hub.uploads.complete(CAR, up["upload_id"])
    assert err.value.status == 422
    with pytest.raises(RequestRefused, match="failed; create a new one"):
        hub.uploads.prove(CAR, up["upload_id"], {"sha256": []})


def test_a_proof_is_answered_once_and_the_same_whether_or_not_the_object_exists(hub: Hub, tmp_path: Path) -> None:
    data = _bag_bytes(tmp_path)
    sha = hashlib.sha256(data).hexdigest()
    hub.uploads.complete(CAR, _send(hub, CAR, "mine", data)["upload_id"])
    answers = []
    for digest in (sha, "e" * 64):
        up = hub.uploads.create(OTHER, {"bag_name": "x" + digest[:4], "size": len(data), "sha256": digest,
                                        "chunk_size": CHUNK})  # fmt: skip
        with pytest.raises(RequestRefused) as err:
            hub.uploads.prove(OTHER, up["upload_id"], {"sha256": ["0" * 64] * 4})
        answers.append((err.value.status, str(err.value)))
        with pytest.raises(RequestRefused) as again:  # one answer per upload, even a right one after a wrong one
            right = ProofChallenge.from_json(up["proof"]).answer(lambda off, n: data[off : off + n])
            hub.uploads.prove(OTHER, up["upload_id"], {"sha256": right})
        answers.append((again.value.status, str(again.value)))
        assert "proof" not in hub.uploads.status(OTHER, up["upload_id"])
    assert answers[:2] == answers[2:] == [(409, PROOF_REFUSED)] * 2
    assert hub.bags.list_bags(OTHER) == []


def test_gc_drops_what_a_crash_left_behind_but_nothing_newer(hub: Hub, tmp_path: Path) -> None:
    data = _bag_bytes(tmp_path, "x: 1\n" + "#" * (2 * CHUNK))  # two chunks
    up = _send(hub, CAR, "b", data)
    folder = hub.store.upload_dir(up["upload_id"])
    stale = [folder / ".1.dead.part", hub.store.tmp / "half-unpacked", hub.store.uploads / "old-layout.part"]
    stale[0].write_bytes(b"cut short")
    stale[1].mkdir()
    stale[2].write_bytes(b"x")
    for path in stale:
        os.utime(path, (1.0, 1.0))
    fresh = hub.store.tmp / "in-flight.body"
    fresh.write_bytes(b"being written right now")
    hub.uploads.collect_garbage(3600.0)
    assert [p.exists() for p in stale] == [False, False, False] and fresh.exists()
    assert hub.uploads.status(CAR, up["upload_id"])["have"] == [0, 1, 2]  # the upload itself is untouched
    assert hub.uploads.complete(CAR, up["upload_id"])["state"] == "complete"


class _Killed(BaseException):
    """Stands in for a SIGKILL: nothing after it runs (no except clause of the hub catches a BaseException)."""


# Every step of `complete` after which a hub process can die; (object, attribute) of what is replaced.
_CRASH_POINTS = [
    ("store", "unpack_upload"),
    ("uploads_module", "check_metadata"),
    ("uploads_module", "read_object"),
    ("store", "install_bag"),
    ("bags", "add_object"),
    ("bags", "add_entry"),
    ("catalog", "set_upload_state"),
    ("store", "drop_upload"),
]


@pytest.mark.parametrize("restarted", [True, False], ids=["restarted", "same-process"])
@pytest.mark.parametrize(("owner", "attr"), _CRASH_POINTS, ids=[a for _, a in _CRASH_POINTS])
def test_a_hub_killed_at_any_step_of_complete_completes_on_the_retry(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, owner: str, attr: str, restarted: bool
) -> None:
    """A hub SIGKILLed while completing: whatever step the process died before (or after), a new hub process
    on the same root (`recover` at its start, as `serve` does) completes the upload on the retry with exact
    data, and nothing is left in uploads/ or tmp/. The soak sweep found chunks left behind by a kill between
    the catalog commit and the cleanup; the retried `complete` drops them even without a restart."""
    import roadloop_hub.uploads as uploads_module

    folder = tmp_path / "bag"
    with BagWriter(folder, compression="none") as w:  # a real, readable bag of a few chunks
        w.add_topic("/sensors/camera/front/image", "sensor_msgs/msg/Image")
        for i in range(8):
            img = np.random.default_rng(i).integers(0, 255, size=(48, 64, 3), dtype=np.uint8)
            w.write_msg("/sensors/camera/front/image", i * 10**8, numpy_to_image(img, i * 10**8, "camera"))
    stream = TarStream(folder)
    data, sha = stream.read(0, stream.size), stream.sha256()
    root = tmp_path / "hub"
    first = open_hub(root, HubConfig())
    up = _send(first, CAR, "b", data)
    target = {"store": first.store, "bags": first.uploads.bags, "catalog": first.catalog,
              "uploads_module": uploads_module}[owner]  # fmt: skip

    def die_before(*args: object, **kwargs: object) -> object:
        raise _Killed

    monkeypatch.setattr(target, attr, die_before)
    with pytest.raises(_Killed):
        first.uploads.complete(CAR, up["upload_id"])
    monkeypatch.undo()
    if restarted:
        first.catalog.close()  # the process is gone: only what is on disk and committed remains
        second = open_hub(root, HubConfig())
        second.uploads.recover()
    else:
        second = first
    try:
        done = second.uploads.complete(CAR, up["upload_id"])
        assert done["state"] == "complete" and done["bag"]["sha256"] == sha and done["bag"]["readable"]
        assert TarStream(second.store.bag_dir(sha)).sha256() == sha
        assert [e["bag_name"] for e in second.bags.list_bags(CAR, None, None)] == ["b"]
        assert list(second.store.uploads.iterdir()) == []
        if restarted:  # (a work folder of the killed call in tmp/ goes at the next start, by age otherwise)
            assert list(second.store.tmp.iterdir()) == []
    finally:
        second.close()
