"""Auth, isolation between vehicles, traversal names and size limits, against a real hub process."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from roadloop_core.contract.wire import TarStream, chunk_range

from .conftest import HubProc, write_bag


def _upload(c, stream: TarStream, name: str, chunk: int = 65536) -> dict:
    r = c.post(
        "/v1/uploads", json={"bag_name": name, "size": stream.size, "sha256": stream.sha256(), "chunk_size": chunk}
    )
    assert r.status_code == 201, r.text
    return r.json()


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory):
    """One hub for the whole module (each test only reads or is refused, so they cannot disturb each other)."""
    tmp = tmp_path_factory.mktemp("sec")
    hub = HubProc(tmp / "hub")
    hub.start()
    stream = TarStream(write_bag(tmp / "a_bag", seed=7, frames=10))
    car_a, car_b = hub.token("car-a"), hub.token("car-b")
    with hub.client(car_a) as c:
        up = _upload(c, stream, "a_bag")
        for i in range(up["n_chunks"]):
            off, n = chunk_range(i, stream.size, 65536)
            data = stream.read(off, n)
            r = c.put(f"/v1/uploads/{up['upload_id']}/chunks/{i}", content=data,
                      headers={"X-Chunk-Sha256": hashlib.sha256(data).hexdigest()})  # fmt: skip
            assert r.status_code == 200
        assert c.post(f"/v1/uploads/{up['upload_id']}/complete").json()["state"] == "complete"
    yield hub, stream, car_a, car_b, up["upload_id"]
    hub.stop()


@pytest.mark.parametrize(
    "header",
    [None, "Bearer", "Bearer not-a-token", "Basic dXNlcjpwYXNz", "bearer rl_forged_token_value"],
)
def test_missing_or_wrong_token_is_401(setup, header: str | None) -> None:
    hub = setup[0]
    import httpx

    headers = {"Authorization": header} if header else {}
    for method, path in [("GET", "/v1/bags"), ("POST", "/v1/uploads"), ("GET", "/v1/channels/production")]:
        r = httpx.request(method, f"{hub.url}{path}", headers=headers, json={})
        assert r.status_code == 401, (path, r.text)
        assert r.headers["www-authenticate"] == "Bearer"


def test_vehicle_cannot_read_another_vehicles_upload_or_bag(setup) -> None:
    hub, stream, car_a, car_b, upload_id = setup
    sha = stream.sha256()
    with hub.client(car_b) as c:
        assert c.get(f"/v1/uploads/{upload_id}").status_code == 403
        assert c.post(f"/v1/uploads/{upload_id}/complete").status_code == 403
        assert (
            c.put(f"/v1/uploads/{upload_id}/chunks/0", content=b"x", headers={"X-Chunk-Sha256": "0" * 64}).status_code
            == 403
        )
        r, none = c.get(f"/v1/bags/{sha}"), c.get(f"/v1/bags/{'0' * 64}")  # the same answer: nothing revealed
        assert r.status_code == none.status_code == 404
        assert r.json()["detail"].replace(sha[:12], "<sha>") == none.json()["detail"].replace("0" * 12, "<sha>")
        assert c.get("/v1/bags").json() == []  # lists only its own
        assert c.get("/v1/uploads").json() == []
    with hub.client(car_a) as c:
        assert c.get(f"/v1/bags/{sha}").json()["sha256"] == sha
        assert [b["bag_name"] for b in c.get("/v1/bags").json()] == ["a_bag"]


def test_vehicle_token_cannot_use_admin_routes_and_revoked_tokens_fail(setup, tmp_path: Path) -> None:
    hub, _stream, car_a, _car_b, upload_id = setup
    with hub.client(car_a) as c:
        assert c.get(f"/v1/uploads/{upload_id}/events").status_code == 403
        assert c.post("/v1/channels/production/bundles", content=b"x" * 1024).status_code == 403
        assert c.post("/v1/channels/production/rollback", json={}).status_code == 403
    with hub.client(hub.admin) as c:
        assert c.post("/v1/uploads", json={}).status_code == 403  # admins do not upload bags
    from roadloop_hub.auth import revoke_tokens
    from roadloop_hub.sql_catalog import open_catalog

    catalog = open_catalog("", hub.root)
    car_c = hub.token("car-c")
    assert revoke_tokens(catalog, "car-c") == 1
    catalog.close()
    with hub.client(car_c) as c:
        assert c.get("/v1/bags").status_code == 401


@pytest.mark.parametrize("name", ["../escape", "..", ".hidden", "a/b", "a\\b", "/etc/passwd", "x" * 101, "", "ok..no"])
def test_traversal_and_bad_names_refused(setup, name: str) -> None:
    hub, _stream, car_a, *_ = setup
    with hub.client(car_a) as c:
        r = c.post("/v1/uploads", json={"bag_name": name, "size": 4096, "sha256": "a" * 64, "chunk_size": 65536})
        assert r.status_code == 400 and "refused" in r.json()["detail"]
        r = c.post("/v1/uploads", json={"bag_name": "fine", "size": 4096, "sha256": "a" * 64, "chunk_size": 65536,
                                        "tags": [name]})  # fmt: skip
        assert r.status_code == 400


def test_traversal_in_download_path_refused(setup) -> None:
    hub, _, car_a, *_ = setup
    with hub.client(car_a) as c:
        for path in [
            "/v1/bundles/" + "a" * 64 + "/files/..%2F..%2Fcatalog.db",
            "/v1/bundles/" + "a" * 64 + "/files/.." ,
            "/v1/bundles/..%2F..%2Fcatalog.db/files/x",
        ]:  # fmt: skip
            r = c.get(path)
            assert r.status_code in (400, 404), (path, r.status_code)
            assert b"SQLite" not in r.content


def test_size_limits_and_chunk_checks(setup, tmp_path: Path) -> None:
    hub, _stream, car_a, *_ = setup
    with hub.client(car_a) as c:
        r = c.post("/v1/uploads", content=b"{" + b" " * (70 << 10) + b"}", headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        streamed = (b" " * 8192 for _ in range(20))  # no Content-Length: counted while it streams
        r = c.post("/v1/uploads", content=streamed, headers={"Content-Type": "application/json"})
        assert r.status_code == 413
        r = c.post("/v1/uploads", json={"bag_name": "huge", "size": 1 << 50, "sha256": "b" * 64, "chunk_size": 65536})
        assert r.status_code == 400
        up = c.post("/v1/uploads", json={"bag_name": "new", "size": 200_000, "sha256": "c" * 64, "chunk_size": 65536})
        uid = up.json()["upload_id"]
        big = b"x" * ((16 << 20) + 1)
        assert (
            c.put(f"/v1/uploads/{uid}/chunks/0", content=big, headers={"X-Chunk-Sha256": "0" * 64}).status_code == 413
        )
        body = b"y" * 65536
        bad = c.put(f"/v1/uploads/{uid}/chunks/0", content=body, headers={"X-Chunk-Sha256": "0" * 64})
        assert bad.status_code == 422  # body does not match its checksum: nothing stored
        short = c.put(f"/v1/uploads/{uid}/chunks/0", content=body[:100],
                      headers={"X-Chunk-Sha256": hashlib.sha256(body[:100]).hexdigest()})  # fmt: skip
        assert short.status_code == 400
        assert c.put(f"/v1/uploads/{uid}/chunks/99", content=body,
                     headers={"X-Chunk-Sha256": hashlib.sha256(body).hexdigest()}).status_code == 400  # fmt: skip
        assert c.get(f"/v1/uploads/{uid}").json()["have"] == []
        r = c.post(f"/v1/uploads/{uid}/complete")
        assert r.status_code == 409 and "missing" in r.json()["detail"]
