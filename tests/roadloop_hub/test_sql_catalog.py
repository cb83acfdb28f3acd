"""`SqlCatalog` keeps the `Catalog` interface's promises, on SQLite and on a real PostgreSQL server.

What one backend writes, the same methods read back as the same records (round trip), in the
documented order; these are the semantics another backend must keep too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from roadloop_hub.catalog import (
    BagEntry,
    BundleRecord,
    Catalog,
    ChunkEvent,
    StoredObject,
    TokenRecord,
    TopicCount,
    UploadRecord,
)
from roadloop_hub.errors import CatalogError
from roadloop_hub.sql_catalog import SqlCatalog, open_catalog


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def catalog(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[SqlCatalog]:
    if request.param == "sqlite":
        cat = open_catalog("", tmp_path)
    else:
        import psycopg

        server = request.getfixturevalue("pg_url")
        name = f"t{uuid.uuid4().hex[:12]}"  # a database of its own per test
        with psycopg.connect(server, autocommit=True) as conn:
            conn.execute(f"CREATE DATABASE {name}")
        cat = open_catalog(server.rsplit("/", 1)[0] + f"/{name}", tmp_path)
    yield cat
    cat.close()


def _upload(i: int, vehicle: str = "car1", state: str = "open", created: float = 100.0) -> UploadRecord:
    return UploadRecord(str(uuid.UUID(int=i)), vehicle, f"bag{i}", 5000, f"{i:x}" * 64, 4096, 2, 10, ("a", "b"),
                        state, created + i)  # fmt: skip


def test_it_is_a_catalog(catalog: SqlCatalog) -> None:
    def uses(c: Catalog) -> str:  # mypy checks SqlCatalog against the Protocol here
        return c.kind

    assert uses(catalog) in ("sqlite", "postgresql")


def test_uploads_round_trip_and_order(catalog: SqlCatalog) -> None:
    with catalog.transaction():
        for i in (1, 2):
            catalog.add_upload(_upload(i))
        catalog.add_upload(_upload(3, vehicle="car2", state="complete"))
    assert catalog.get_upload(_upload(2).id) == _upload(2)
    assert catalog.get_upload(str(uuid.UUID(int=9))) is None
    assert catalog.find_upload("car1", "bag1", _upload(1).sha256) == _upload(1)
    assert catalog.find_upload("car2", "bag1", _upload(1).sha256) is None
    assert catalog.count_open_uploads("car1") == 2 and catalog.count_open_uploads("car2") == 0
    assert [u.id for u in catalog.list_uploads(None)] == [_upload(i).id for i in (1, 2, 3)]
    assert [u.id for u in catalog.list_uploads("car2")] == [_upload(3).id]
    catalog.set_upload_state(_upload(1).id, "complete", 500.0)
    done = catalog.get_upload(_upload(1).id)
    assert done is not None and (done.state, done.completed) == ("complete", 500.0)
    assert catalog.stale_uploads(cutoff=1000.0) == [_upload(2).id]  # open, old, no chunk event since


def test_chunks_and_their_log(catalog: SqlCatalog) -> None:
    up = _upload(1)
    catalog.add_upload(up)
    catalog.record_chunk(up.id, 1, "b" * 64, 904, 110.0)
    catalog.record_chunk(up.id, 0, "a" * 64, 4096, 111.0)
    catalog.record_chunk(up.id, 1, "c" * 64, 904, 112.0)  # replaces the earlier record of chunk 1
    catalog.add_chunk_event(up.id, 0, "duplicate", 113.0)
    assert catalog.held_chunks(up.id) == [0, 1]
    assert catalog.held_chunk_sha256(up.id, 1) == "c" * 64 and catalog.held_chunk_sha256(up.id, 5) is None
    assert catalog.chunk_events(up.id) == [
        ChunkEvent(1, "stored", 110.0), ChunkEvent(0, "stored", 111.0), ChunkEvent(1, "stored", 112.0),
        ChunkEvent(0, "duplicate", 113.0),
    ]  # fmt: skip
    assert catalog.stale_uploads(cutoff=112.5) == []  # created before, but touched at 113.0
    assert catalog.stale_uploads(cutoff=113.5) == [up.id]
    catalog.drop_chunks(up.id)
    assert catalog.held_chunks(up.id) == []


def test_objects_entries_and_listing(catalog: SqlCatalog) -> None:
    topics = (TopicCount("/a", "std_msgs/msg/String", 3), TopicCount("/b", "sensor_msgs/msg/Imu", 7))
    good = StoredObject("1" * 64, 9000, "mcap", 5, 9, 10, True, "", {"roadloop.tags": "x"}, 1.0, topics)
    bad = StoredObject("2" * 64, 2048, "", 0, 0, 0, False, "no metadata.yaml", {}, 2.0)
    with catalog.transaction():
        catalog.add_object(good)
        catalog.add_object(bad)
    assert catalog.get_object("1" * 64) == good and catalog.get_object("2" * 64) == bad
    assert catalog.get_object("3" * 64) is None
    e1 = BagEntry("car1", "first", "1" * 64, 0, ("x",), 10.0, "u1")
    e2 = BagEntry("car2", "same-content", "1" * 64, 100, ("disengagement",), 11.0, "u2")
    e3 = BagEntry("car1", "broken", "2" * 64, 0, (), 12.0, "u3")
    for e in (e3, e1, e2):
        catalog.add_bag_entry(e)
    catalog.add_bag_entry(BagEntry("car1", "first", "1" * 64, 5, (), 99.0, "u9"))  # same key: kept as it was
    assert catalog.bag_entries("1" * 64) == [e1, e2]
    listed = catalog.list_bags(None)
    assert [(b.entry, b.object) for b in listed] == [(e1, good), (e2, good), (e3, bad)]
    assert [b.entry.bag_name for b in catalog.list_bags("car1")] == ["first", "broken"]
    assert catalog.list_bags("car3") == []


def test_registry_appends_releases(catalog: SqlCatalog) -> None:
    b1, b2 = BundleRecord("a" * 64, "pilot", 1, '{"v": 1}', 1.0), BundleRecord("b" * 64, "pilot", 2, '{"v": 2}', 2.0)
    catalog.add_bundle(b1)
    catalog.add_bundle(b2)
    catalog.add_bundle(BundleRecord("a" * 64, "other", 9, "{}", 3.0))  # same id: kept as it was
    assert catalog.get_bundle("a" * 64) == b1 and catalog.get_bundle("c" * 64) is None
    assert catalog.latest_release("production") is None
    r1 = catalog.append_release("production", b1.id, "publish", "boss", 10.0)
    r2 = catalog.append_release("production", b2.id, "publish", "boss", 11.0)
    r3 = catalog.append_release("production", b1.id, "rollback", "boss", 12.0)
    c1 = catalog.append_release("candidate", b2.id, "publish", "boss", 13.0)
    assert [r.seq for r in (r1, r2, r3, c1)] == [1, 2, 3, 1]
    assert catalog.releases("production") == [r1, r2, r3] and catalog.latest_release("production") == r3


def test_tokens(catalog: SqlCatalog) -> None:
    t1, t2 = TokenRecord("1" * 64, "car1", "vehicle", 1.0), TokenRecord("2" * 64, "boss", "admin", 2.0)
    catalog.add_token(t1)
    catalog.add_token(t2)
    assert catalog.active_token("1" * 64) == t1 and catalog.active_token("3" * 64) is None
    assert [t.principal for t in catalog.list_tokens()] == ["boss", "car1"]
    assert catalog.revoke_tokens("car1") == 1 and catalog.revoke_tokens("car1") == 0
    assert catalog.active_token("1" * 64) is None
    assert [t.revoked for t in catalog.list_tokens()] == [False, True]


def test_a_transaction_is_all_or_nothing(catalog: SqlCatalog) -> None:
    with pytest.raises(CatalogError), catalog.transaction():
        catalog.add_upload(_upload(1))
        catalog.add_upload(_upload(1))  # same id: the statement fails, the first insert is rolled back too
    assert catalog.get_upload(_upload(1).id) is None
    catalog.add_upload(_upload(1))  # the connection is usable afterwards
    assert catalog.get_upload(_upload(1).id) == _upload(1)


def test_failed_uploads_keep_their_reason(catalog: SqlCatalog) -> None:
    catalog.add_upload(_upload(7))
    catalog.fail_upload(_upload(7).id, "not the wire format's tar stream: duplicate member")
    got = catalog.get_upload(_upload(7).id)
    assert got is not None and got.state == "failed" and got.error.endswith("duplicate member")
    assert catalog.count_open_uploads("car1") == 0


def test_a_challenge_is_taken_once(catalog: SqlCatalog) -> None:
    catalog.add_upload(_upload(8))
    catalog.add_challenge(_upload(8).id, '{"nonce": "00", "ranges": [[0, 1]]}')
    assert catalog.get_challenge(_upload(8).id) == '{"nonce": "00", "ranges": [[0, 1]]}'
    assert catalog.take_challenge(_upload(8).id) == '{"nonce": "00", "ranges": [[0, 1]]}'
    assert catalog.take_challenge(_upload(8).id) is None and catalog.get_challenge(_upload(8).id) is None


def test_a_catalog_from_before_the_error_column_is_upgraded(tmp_path: Path) -> None:
    import sqlite3

    conn = sqlite3.connect(tmp_path / "catalog.db")  # the uploads table as the first release created it
    conn.execute(
        "CREATE TABLE uploads (id TEXT PRIMARY KEY, vehicle TEXT NOT NULL, bag_name TEXT NOT NULL,"
        " size BIGINT NOT NULL, sha256 TEXT NOT NULL, chunk_size BIGINT NOT NULL, n_chunks INTEGER NOT NULL,"
        " priority INTEGER NOT NULL,"
        " tags TEXT NOT NULL, state TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, completed DOUBLE PRECISION)"
    )
    row = ("u1", "car1", "b", 5000, "a" * 64, 4096, 2, 0, "[]", "open", 1.0, None)
    conn.execute("INSERT INTO uploads VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)", row)
    conn.commit()
    conn.close()
    cat = open_catalog("", tmp_path)
    try:
        old = cat.get_upload("u1")
        assert old is not None and old.error == "" and old.state == "open"
        cat.fail_upload("u1", "why")
        assert (cat.get_upload("u1") or old).error == "why"
    finally:
        cat.close()
