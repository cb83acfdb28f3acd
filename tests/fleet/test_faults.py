"""Fault injection against a running hub: hostile, malformed and oversized requests (issue 13).

Every case asserts "a clean 4xx, or exactly the right data" and is counted in `TALLY` (printed as
"fleet fault injection: tried N, survived M" at the end of the run). The hub is one real
`roadloop hub serve` process; a `HealthPoller` asks `/v1/health` throughout the hostile uploads,
which must all be answered. The SIGKILL cases are in `test_kill_points.py`.
"""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from typing import Any

import httpx
import pytest

from roadloop_core.bundle import Manifest, TensorSpec, generate_keypair, write_bundle
from roadloop_core.config import config_dir
from roadloop_core.contract.wire import BLOCK, ProofChallenge, TarStream, _header
from roadloop_core.features import ObservationSpec
from roadloop_core.hub_client import HubClient

from .conftest import TALLY, HealthPoller, HubProc, put_chunks, upload_bytes, write_bag

CHUNK = 65536


@pytest.fixture(scope="module")
def hub(tmp_path_factory: pytest.TempPathFactory) -> Any:
    tmp = tmp_path_factory.mktemp("faults")
    _, pub = generate_keypair(tmp / "keys")
    proc = HubProc(tmp / "hub", public_key=pub)
    proc.start()
    yield proc
    proc.stop()


def _stored_sha(hub: HubProc, sha: str) -> str:
    """The sha256 of a stored bag folder re-tarred: must be its address (exact data)."""
    return TarStream(hub.root / "bags" / sha).sha256()


def _with_custom(text: str, custom: str) -> str:
    """metadata.yaml text with its custom_data replaced by `custom` (YAML lines under the bag's mapping)."""
    assert "  custom_data: null\n" in text
    return text.replace("  custom_data: null\n", custom)


def _alias_bomb(levels: int) -> str:
    lines = ["  custom_data:", "    a0: &a0 [x, x, x, x, x, x, x, x, x]"]
    for i in range(1, levels):
        lines.append(f"    a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]")
    return "\n".join(lines) + "\n"


# -- 5: a held chunk is immutable; the whole sha256 covers the bytes as stored ------------------------
def test_chunk_overwrite_is_refused_before_anything_is_written(hub: HubProc, tmp_path: Path) -> None:
    """The probe: re-PUT a held chunk with one byte changed and a wrong X-Chunk-Sha256, then complete;
    later another vehicle uploads the genuine content and is deduplicated onto the stored copy."""
    with TALLY.case("chunk overwrite"):
        stream = TarStream(write_bag(tmp_path / "genuine", seed=501, frames=30))
        data, sha = stream.read(0, stream.size), stream.sha256()
        assert len(data) > 3 * CHUNK
        with hub.client(hub.token("over-a")) as c:
            up = c.post("/v1/uploads", json={"bag_name": "genuine", "size": len(data), "sha256": sha,
                                              "chunk_size": CHUNK}).json()  # fmt: skip
            put_chunks(c, up, data)
            url = f"/v1/uploads/{up['upload_id']}/chunks/1"
            evil = bytearray(data[CHUNK : 2 * CHUNK])
            evil[100] ^= 0xFF
            for header in ["0" * 64, hashlib.sha256(evil).hexdigest()]:  # wrong, or evil's own sha256
                r = c.put(url, content=bytes(evil), headers={"X-Chunk-Sha256": header})
                assert r.status_code == 409 and "held chunks never change" in r.json()["detail"], r.text[:300]
            held_sha = hashlib.sha256(data[CHUNK : 2 * CHUNK]).hexdigest()
            r = c.put(url, content=bytes(evil), headers={"X-Chunk-Sha256": held_sha})  # body lies about itself
            assert r.status_code == 422
            done = c.post(f"/v1/uploads/{up['upload_id']}/complete")
            assert done.status_code == 200 and done.json()["state"] == "complete", done.text[:300]
        assert _stored_sha(hub, sha) == sha  # the stored bytes are the genuine ones
        with HubClient(hub.url, hub.token("over-b")) as other:  # the genuine content from another vehicle
            up_b = other.create_upload("copy", stream.size, sha, CHUNK)
            report = other.send_missing(up_b, stream)
            assert report["deduplicated"] and report["sent"] == 0
            assert other.get_bag(sha)["sha256"] == sha
        assert _stored_sha(hub, sha) == sha


# -- 7: an alias bomb is refused at bounded cost; the hub stays responsive; the upload is not wedged -----
def test_alias_bomb_refused_with_health_answered_and_upload_not_wedged(hub: HubProc, tmp_path: Path) -> None:
    with TALLY.case("alias bomb"):
        bag = write_bag(tmp_path / "bomb", seed=502, frames=3)
        meta = bag / "metadata.yaml"
        meta.write_text(_with_custom(meta.read_text(), _alias_bomb(7)))  # 9**7 nodes after expansion, 1 KB of text
        data = TarStream(bag).read(0, TarStream(bag).size)
        with hub.client(hub.token("bomber")) as c, HealthPoller(hub.url) as health:
            upload_id, done = upload_bytes(c, "bomb", data)
            assert done.status_code == 422 and "alias" in done.json()["detail"], done.text[:300]
            again = c.post(f"/v1/uploads/{upload_id}/complete")  # a retry: the same clean answer, never 500
            assert (
                again.status_code == 422
                and again.json()["detail"] == f"upload {upload_id} was refused: " + (done.json()["detail"])
            )
            status = c.get(f"/v1/uploads/{upload_id}").json()
            assert status["state"] == "failed" and "alias" in status["error"]
            sha = hashlib.sha256(data).hexdigest()
            body = {"bag_name": "bomb", "size": len(data), "sha256": sha, "chunk_size": CHUNK}
            fresh = c.post("/v1/uploads", json=body)
            assert fresh.status_code == 201 and fresh.json()["upload_id"] != upload_id  # a new upload, not wedged
        assert health.failures == [] and health.answered > 0
        assert not (hub.root / "bags" / hashlib.sha256(data).hexdigest()).exists()
        assert list((hub.root / "tmp").iterdir()) == []


@pytest.mark.parametrize(
    ("name", "body"),
    [
        ("oversized", lambda text: text + "#" * (9 << 20)),
        ("not utf-8", lambda text: text.encode().replace(b"topics", b"\xff\xfe", 1)),
        ("too deep", lambda text: _with_custom(text, "  custom_data:\n    x: " + "[" * 200 + "]" * 200 + "\n")),
        ("recursive", lambda text: _with_custom(text, "  custom_data: &c\n    x: *c\n")),
    ],
)
def test_hostile_metadata_refused(hub: HubProc, tmp_path: Path, name: str, body: Any) -> None:
    with TALLY.case("hostile metadata"):
        bag = write_bag(tmp_path / "m", seed=503, frames=2)
        new = body((bag / "metadata.yaml").read_text())
        (bag / "metadata.yaml").write_bytes(new if isinstance(new, bytes) else new.encode())
        data = TarStream(bag).read(0, TarStream(bag).size)
        with hub.client(hub.token("meta-" + name.replace(" ", "-"))) as c, HealthPoller(hub.url) as health:
            _, done = upload_bytes(c, "m", data, chunk=1 << 20)
            assert done.status_code == 422 and "metadata.yaml" in done.json()["detail"], (name, done.text[:300])
        assert health.failures == []


# -- 8: a claim with the sha256 alone reveals nothing and gets nothing ------------------------------------
def test_dedup_claim_without_the_bytes_gets_nothing_and_learns_nothing(hub: HubProc, tmp_path: Path) -> None:
    with TALLY.case("dedup claim"):
        stream = TarStream(write_bag(tmp_path / "secret", seed=504, frames=8))
        sha = stream.sha256()
        with HubClient(hub.url, hub.token("owner")) as owner:
            owner.send_missing(owner.create_upload("secret", stream.size, sha, CHUNK), stream)
        unknown = hashlib.sha256(b"nothing stored under this").hexdigest()
        with hub.client(hub.token("thief")) as c:
            answers = {}
            for key, digest in (("held", sha), ("unknown", unknown)):
                r = c.post("/v1/uploads", json={"bag_name": "claim-" + key, "size": stream.size, "sha256": digest,
                                                "chunk_size": CHUNK})  # fmt: skip
                assert r.status_code == 201, r.text[:300]
                up = r.json()
                proof = c.post(f"/v1/uploads/{up['upload_id']}/proof", json={"sha256": ["0" * 64] * 4})
                bag = c.get(f"/v1/bags/{digest}")
                answers[key] = (
                    r.status_code,
                    {k: v for k, v in up.items() if k not in ("upload_id", "bag_name", "sha256", "proof")},
                    sorted(up["proof"]),
                    len(up["proof"]["ranges"]),
                    proof.status_code,
                    proof.json(),
                    bag.status_code,
                    bag.json()["detail"].replace(digest[:12], "<sha>"),
                    c.post(f"/v1/uploads/{up['upload_id']}/complete").status_code,
                )
            assert answers["held"] == answers["unknown"]  # the same whether or not the object exists
            assert answers["held"][1]["state"] == "open" and answers["held"][4] == 409 and answers["held"][6] == 404
            assert c.get("/v1/bags").json() == []
        with hub.client(hub.token("holder")) as c:  # a vehicle that holds the bytes proves it: deduplicated
            up = c.post("/v1/uploads", json={"bag_name": "mine-too", "size": stream.size, "sha256": sha,
                                             "chunk_size": CHUNK}).json()  # fmt: skip
            digests = ProofChallenge.from_json(up["proof"]).answer(stream.read)
            done = c.post(f"/v1/uploads/{up['upload_id']}/proof", json={"sha256": digests})
            assert done.status_code == 200 and done.json()["state"] == "complete" and done.json()["deduplicated"]
            assert [b["bag_name"] for b in c.get("/v1/bags").json()] == ["mine-too"]
        assert len([p for p in (hub.root / "bags").iterdir() if p.name == sha]) == 1  # stored once


# -- 17: malformed bodies and tars are 4xx with one clear detail; the upload fails cleanly ---------------
def _dup_tar(member: bytes) -> bytes:
    pad = b"\0" * (-len(member) % BLOCK)
    one = _header("metadata.yaml", len(member)) + member + pad
    return one + one + b"\0" * (2 * BLOCK)


@pytest.mark.parametrize(
    ("case", "data"),
    [
        ("duplicate members", _dup_tar(b"rosbag2_bagfile_information: {}\n")),
        ("not a tar", os.urandom(4096)),
        ("traversal member", _header("ok", 0).replace(b"ok", b"..", 1) + b"\0" * (2 * BLOCK)),
        ("truncated", _header("metadata.yaml", 10_000) + b"x" * 600 + b"\0" * (2 * BLOCK)),
        ("non-canonical header", _header("metadata.yaml", 0)[:108] + b"0000777\0" + _header("metadata.yaml", 0)[116:]
         + b"\0" * (2 * BLOCK)),
    ],
)  # fmt: skip
def test_bad_tars_fail_the_upload_cleanly(hub: HubProc, case: str, data: bytes) -> None:
    with TALLY.case("bad tar"):
        data = data + b"\0" * max(0, 1024 - len(data))
        with hub.client(hub.token("tar-" + case.replace(" ", "-"))) as c:
            upload_id, done = upload_bytes(c, "t", data)
            assert done.status_code == 422 and "not the wire format's tar" in done.json()["detail"], done.text[:300]
            again = c.post(f"/v1/uploads/{upload_id}/complete")
            assert again.status_code == 422
            assert c.get(f"/v1/uploads/{upload_id}").json()["state"] == "failed"
        assert list((hub.root / "tmp").iterdir()) == []


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/uploads", b"[" * 60_000),
        ("/v1/uploads", b'{"a":' * 10_000 + b"1" + b"}" * 10_000),
        ("/v1/uploads", b"\xff\xfe\x00not json"),
        ("/v1/uploads", b'{"bag_name": "x", "size": 1e400, "sha256": "' + b"a" * 64 + b'", "chunk_size": 65536}'),
        ("/v1/uploads", b'{"bag_name": "x", "size": true, "sha256": "' + b"a" * 64 + b'", "chunk_size": 65536}'),
        ("/v1/uploads", b'{"bag_name": ["x"], "size": 4096, "sha256": 5, "chunk_size": 65536}'),
        ("/v1/uploads", b'{"bag_name": "x", "size": 4096, "sha256": "' + b"a" * 64 + b'", "chunk_size": 65536, '
         b'"tags": [{"a": 1}]}'),
    ],
)  # fmt: skip
def test_malformed_json_is_400(hub: HubProc, path: str, body: bytes) -> None:
    with TALLY.case("malformed json"), hub.client(hub.token("json")) as c:
        r = c.post(path, content=body, headers={"Content-Type": "application/json"})
        assert r.status_code == 400, r.text[:300]
        assert isinstance(r.json()["detail"], str)


def _raw(hub: HubProc, request: bytes) -> bytes:
    """Send raw bytes on a fresh connection; what the hub answers before it closes the connection.

    A reset (the hub closed while unread request bytes were pending) ends the answer: refusing a
    request by closing its connection is clean too.
    """
    out = b""
    with socket.create_connection(("127.0.0.1", hub.port), timeout=60) as s:
        try:
            s.sendall(request)
            s.shutdown(socket.SHUT_WR)
        except OSError:  # closed by the hub before the whole request was sent: read what it answered
            pass
        try:
            while chunk := s.recv(65536):
                out += chunk
        except OSError:
            pass
    return out


AUTH = b"Authorization: Bearer {token}\r\n"


@pytest.mark.parametrize(
    "request_bytes",
    [
        b"GET /v1/health HTTP/1.1\r\nHost: x\r\nX-Big: " + b"a" * (200 << 10) + b"\r\n\r\n",
        b"GET /v1/health HTTP/1.1\r\nHost: x\r\n" + b"".join(b"X-%d: 1\r\n" % i for i in range(20_000)) + b"\r\n",
        b"POST /v1/uploads HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: 99999999999\r\n\r\n{}",
        b"POST /v1/uploads HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: -5\r\n\r\n{}",
        b"POST /v1/uploads HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: 100\r\n\r\n{}",
        b"POST /v1/uploads HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: 1\r\nContent-Length: 2\r\n\r\n{}",
        b"POST /v1/uploads HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
        b"POST /v1/channels/production/rollback HTTP/1.1\r\nHost: x\r\n" + AUTH + b"Content-Length: 50\r\n\r\n{",
        b"GET /v1/bundles/../../catalog.db HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v1/bundles/%2e%2e/%2e%2e/catalog.db/files/x HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /v1/health\x00 HTTP/1.1\r\nHost: x\r\n\r\n",
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + os.urandom(200),  # a TLS hello on the plain port
    ],
)
def test_hostile_raw_requests(hub: HubProc, request_bytes: bytes) -> None:
    with TALLY.case("raw http"):
        answer = _raw(hub, request_bytes.replace(b"{token}", hub.token("raw").encode()))
        if answer:  # the server may also just close the connection: that is a clean refusal too
            status = int(answer.split(b" ", 2)[1])
            assert 400 <= status < 500, answer[:300]
        assert b"SQLite" not in answer
        assert httpx.get(f"{hub.url}/v1/health", timeout=30).status_code == 200


def test_wrong_chunk_lengths_and_indices(hub: HubProc) -> None:
    data = os.urandom(3 * CHUNK)
    with TALLY.case("chunk framing"), hub.client(hub.token("framing")) as c:
        sha = hashlib.sha256(data).hexdigest()
        up = c.post("/v1/uploads", json={"bag_name": "f", "size": len(data), "sha256": sha, "chunk_size": CHUNK}).json()
        url = f"/v1/uploads/{up['upload_id']}/chunks"
        piece = data[:CHUNK]
        good = {"X-Chunk-Sha256": hashlib.sha256(piece).hexdigest()}
        for idx, body, headers in [
            (0, piece + b"x", good),  # one byte too many
            (0, piece[:-1], good),  # one too few
            (-1, piece, good),
            (3, piece, good),
            (10**30, piece, good),
            (0, piece, {"X-Chunk-Sha256": "zz"}),
            (0, piece, {}),
        ]:
            r = c.put(f"{url}/{idx}", content=body, headers=headers)
            assert 400 <= r.status_code < 500, (idx, r.status_code, r.text[:300])
        assert c.get(f"/v1/uploads/{up['upload_id']}").json()["have"] == []
        r = _raw(hub, (f"PUT {url}/0 HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {hub.token('framing2')}\r\n"
                       f"X-Chunk-Sha256: {good['X-Chunk-Sha256']}\r\nContent-Length: {CHUNK}\r\n\r\n").encode()
                 + piece[:1000])  # fmt: skip
        assert not r or 400 <= int(r.split(b" ", 2)[1]) < 500
        assert c.get(f"/v1/uploads/{up['upload_id']}").json()["have"] == []  # a cut body is never held


def test_range_abuse_on_bundle_downloads(hub: HubProc, tmp_path: Path) -> None:
    priv = hub.public_key.parent / "signing.key" if hub.public_key else None
    assert priv is not None
    src = tmp_path / "p.onnx"
    payload = os.urandom(100_000)
    src.write_bytes(payload)
    manifest = Manifest(
        name="range", version=1,
        inputs=(TensorSpec("ego_state", (1, 4), normalization={"mean": [0.0] * 4, "std": [1.0] * 4}),),
        outputs=(TensorSpec("waypoints", (1, 8, 2)), TensorSpec("target_speed", (1, 1))),
        observation=ObservationSpec.from_config(config_dir() / "dataset.yaml"),
    )  # fmt: skip
    write_bundle(tmp_path / "b", files={"policy.onnx": src}, manifest=manifest, signing_key=priv)
    with hub.client(hub.admin) as c:
        stream = TarStream(tmp_path / "b")
        r = c.post("/v1/channels/candidate/bundles", content=stream.read(0, stream.size))
        assert r.status_code == 201, r.text[:300]
        url = f"/v1/bundles/{r.json()['bundle_id']}/files/policy.onnx"
        specs = ["bytes=99999999-", "bytes=5-1", "bytes=-0", "bytes=abc", "bytes=0-1," * 2000 + "0-1", "bytes=0-",
                 "bytes=-10", "bytes=10-20", "bytes=99990-200000", "items=0-5", "bytes=" + "9" * 400]  # fmt: skip
        for spec in specs:
            with TALLY.case("range"):
                got = c.get(url, headers={"Range": spec})
                assert got.status_code in (200, 206, 416) or 400 <= got.status_code < 500, (spec, got.status_code)
                if got.status_code == 200:
                    assert got.content == payload
                elif got.status_code == 206 and "multipart" not in got.headers.get("content-type", ""):
                    first, last = (int(v) for v in got.headers["content-range"].split(" ")[1].split("/")[0].split("-"))
                    assert got.content == payload[first : last + 1], spec


def test_no_request_above_ended_in_a_server_error(hub: HubProc) -> None:
    """Runs last in this module: every hostile request above was answered without an unhandled exception."""
    with TALLY.case("no server error"):
        log = hub.log.read_text(errors="replace")
        assert "Traceback" not in log and "Exception in ASGI application" not in log, log[-3000:]
