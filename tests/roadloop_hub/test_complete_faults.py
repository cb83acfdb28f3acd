"""Server-side faults during an upload answer 503 and leave the upload open for a retry (issue 13).

Over HTTP, a real `roadloop hub serve` process (the fleet tests' `HubProc`) has its file writes made to
fail for real: `prlimit` sets RLIMIT_FSIZE on the running server (Python ignores SIGXFSZ, so a write past
the limit is EFBIG, as on a full disk), and is lifted again to remove the fault. A chunk body that cannot
be written, a bag that cannot be unpacked and a catalog commit that cannot be written each answer 503,
never a raw 500, and the same call succeeds once the fault is gone. Without HTTP, a real SQLite commit
refused by a lock another real connection holds is a CatalogError, rolled back, and the connection works on.
"""

from __future__ import annotations

import hashlib
import resource
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from roadloop_core.contract.wire import TarStream, chunk_range
from roadloop_hub.db import Database
from roadloop_hub.errors import CatalogError, RequestRefused
from tests.fleet.conftest import HubProc, put_chunks, write_bag

pytestmark = pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs Linux prlimit")

CHUNK = 64 << 10


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[HubProc]:
    proc = HubProc(tmp_path / "hub")
    proc.start()
    yield proc
    proc.stop()


@contextmanager
def file_size_limit(hub: HubProc, limit: int) -> Iterator[None]:
    """The serving hub may write no file past `limit` bytes (EFBIG) until the block ends."""
    assert hub.proc is not None
    pid = hub.proc.pid
    before = resource.prlimit(pid, resource.RLIMIT_FSIZE)
    resource.prlimit(pid, resource.RLIMIT_FSIZE, (limit, before[1]))
    try:
        yield
    finally:
        resource.prlimit(pid, resource.RLIMIT_FSIZE, before)


def _bag(tmp_path: Path) -> tuple[bytes, str]:
    stream = TarStream(write_bag(tmp_path / "rec" / "drive1", seed=1))  # ~0.4 MB, one mcap file
    data = stream.read(0, stream.size)
    return data, hashlib.sha256(data).hexdigest()


def _create(c: httpx.Client, name: str, data: bytes) -> dict[str, Any]:
    sha = hashlib.sha256(data).hexdigest()
    r = c.post("/v1/uploads", json={"bag_name": name, "size": len(data), "sha256": sha, "chunk_size": CHUNK})
    assert r.status_code == 201, r.text
    return dict(r.json())


def _stored_sha256(hub: HubProc, sha: str) -> str:
    return TarStream(hub.root / "bags" / sha).sha256()


def test_a_chunk_body_the_disk_refuses_is_503_and_sent_again(hub: HubProc, tmp_path: Path) -> None:
    data, _ = _bag(tmp_path)
    with hub.client(hub.token("car1")) as c:
        up = _create(c, "drive1", data)
        off, n = chunk_range(0, len(data), CHUNK)
        piece = data[off : off + n]
        headers = {"X-Chunk-Sha256": hashlib.sha256(piece).hexdigest()}
        with file_size_limit(hub, 1000):  # smaller than one chunk
            r = c.put(f"/v1/uploads/{up['upload_id']}/chunks/0", content=piece, headers=headers)
        assert r.status_code == 503, r.text
        assert "File too large" in r.json()["detail"]
        status = c.get(f"/v1/uploads/{up['upload_id']}").json()
        assert status["state"] == "open" and status["have"] == []  # nothing half-written is held
        r = c.put(f"/v1/uploads/{up['upload_id']}/chunks/0", content=piece, headers=headers)
        assert r.status_code == 200 and r.json()["stored"] is True, r.text


def test_complete_on_a_disk_that_fails_mid_unpack_is_503_and_the_retry_completes(hub: HubProc, tmp_path: Path) -> None:
    data, sha = _bag(tmp_path)
    with hub.client(hub.token("car1")) as c:
        up = _create(c, "drive1", data)
        put_chunks(c, up, data)
        with file_size_limit(hub, len(data) // 2):  # the chunks fit, the unpacked mcap file does not
            r = c.post(f"/v1/uploads/{up['upload_id']}/complete")
        assert r.status_code == 503, r.text
        assert "File too large" in r.json()["detail"] and "retry" in r.json()["detail"]
        status = c.get(f"/v1/uploads/{up['upload_id']}").json()
        assert status["state"] == "open" and status["have"] == list(range(up["n_chunks"]))
        assert list((hub.root / "tmp").iterdir()) == [] and not (hub.root / "bags" / sha).exists()
        r = c.post(f"/v1/uploads/{up['upload_id']}/complete")
        assert r.status_code == 200, r.text
        done = r.json()
        assert done["state"] == "complete" and done["bag"]["sha256"] == sha and done["bag"]["readable"]
    assert _stored_sha256(hub, sha) == sha  # the stored object is what its address says


def test_complete_whose_catalog_commit_fails_is_503_and_the_retry_completes(hub: HubProc, tmp_path: Path) -> None:
    data, sha = _bag(tmp_path)
    with hub.client(hub.token("car1")) as c:
        put_chunks(c, up1 := _create(c, "drive1", data), data)
        assert c.post(f"/v1/uploads/{up1['upload_id']}/complete").status_code == 200
    # Another vehicle with the same content: its complete stores nothing (the object is held), it only
    # commits its catalog entry, and that commit is what fails (no file may grow: the WAL cannot be written).
    with hub.client(hub.token("car2")) as c:
        put_chunks(c, up := _create(c, "drive1", data), data)
        with file_size_limit(hub, 1):
            r = c.post(f"/v1/uploads/{up['upload_id']}/complete")
            assert r.status_code == 503, r.text
            assert "catalog" in r.json()["detail"]
            refused = c.post("/v1/uploads", json={"bag_name": "x", "size": 4096, "sha256": "a" * 64,
                                                  "chunk_size": CHUNK})  # fmt: skip
            assert refused.status_code == 503, refused.text  # a create commits too
            assert c.get("/v1/health").status_code == 200
        status = c.get(f"/v1/uploads/{up['upload_id']}").json()
        assert status["state"] == "open" and status["have"] == list(range(up["n_chunks"]))
        r = c.post(f"/v1/uploads/{up['upload_id']}/complete")
        assert r.status_code == 200, r.text
        assert r.json()["state"] == "complete" and r.json()["bag"]["sha256"] == sha
        assert [u["bag_name"] for u in c.get("/v1/uploads").json()] == ["drive1"]  # the refused create left nothing
    assert sorted(b["vehicle"] for b in hub.admin_get("/v1/bags")) == ["car1", "car2"]
    assert _stored_sha256(hub, sha) == sha


def test_a_commit_the_database_refuses_is_a_catalog_error_rolled_back(tmp_path: Path) -> None:
    """A real sqlite3.OperationalError at COMMIT: in rollback-journal mode a commit needs the exclusive lock,
    which a reader's open transaction on a second connection denies (timeout=0: at once)."""
    path = tmp_path / "catalog.db"
    db = Database(sqlite3.connect(path, check_same_thread=False, timeout=0, isolation_level="DEFERRED"), "sqlite",
                  str(path))  # fmt: skip
    db.execute("CREATE TABLE t (x INTEGER)")
    reader = sqlite3.connect(path, timeout=0, isolation_level=None)
    reader.execute("BEGIN")
    assert reader.execute("SELECT count(*) FROM t").fetchone() == (0,)  # holds the shared lock
    inserted = False
    with pytest.raises(CatalogError, match="database is locked") as err, db.transaction():
        db.execute("INSERT INTO t VALUES (1)")
        inserted = True  # the statement went through: the commit is what failed
    assert inserted and isinstance(err.value.__cause__, sqlite3.OperationalError)
    reader.execute("ROLLBACK")
    assert db.query("SELECT count(*) AS n FROM t") == [{"n": 0}]  # rolled back, not committed later
    with db.transaction(durable=False):
        db.execute("INSERT INTO t VALUES (2)")
    assert reader.execute("SELECT x FROM t").fetchall() == [(2,)]
    # Outside a transaction too: a single statement whose commit is refused, then the connection works on.
    reader.execute("BEGIN")
    reader.execute("SELECT count(*) FROM t").fetchone()
    with pytest.raises(CatalogError, match="database is locked"):
        db.execute("INSERT INTO t VALUES (3)")
    reader.execute("ROLLBACK")
    db.execute("INSERT INTO t VALUES (4)")
    assert reader.execute("SELECT x FROM t ORDER BY x").fetchall() == [(2,), (4,)]
    reader.close()
    db.close()


class _RollbackFailsOnce:
    """A real SQLite connection whose first rollback fails (as on an I/O error), then works again."""

    def __init__(self, conn: sqlite3.Connection) -> None:
        self._conn, self.failed = conn, False

    def rollback(self) -> None:
        if not self.failed:
            self.failed = True
            raise sqlite3.OperationalError("disk I/O error")
        self._conn.rollback()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._conn, name)


def test_a_transaction_whose_rollback_failed_is_never_committed_by_the_next_statement(tmp_path: Path) -> None:
    path = tmp_path / "catalog.db"
    conn = _RollbackFailsOnce(sqlite3.connect(path, check_same_thread=False, isolation_level="DEFERRED"))
    db = Database(conn, "sqlite", str(path))
    db.execute("CREATE TABLE t (x INTEGER)")
    with pytest.raises(CatalogError, match="disk I/O error") as err, db.transaction():
        db.execute("INSERT INTO t VALUES (1)")
        raise RequestRefused(409, "refused after a write")
    assert isinstance(err.value.__cause__, RequestRefused) and conn.failed
    db.execute("INSERT INTO t VALUES (2)")  # rolls the half-done transaction back first
    assert db.query("SELECT x FROM t") == [{"x": 2}]
    db.close()
