"""The hub on a real PostgreSQL server started by the test (`pg_url`, tests/conftest.py); skipped without one."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from roadloop_core.contract.wire import TarStream

pytestmark = pytest.mark.postgres


def test_hub_on_postgresql(pg_url: str, hub_proc, make_bag, run_bridge, tmp_path: Path) -> None:
    hub = hub_proc(db_url=pg_url)
    assert hub.admin_get("/v1/health")["db"] == "postgresql"
    watch = tmp_path / "rec"
    watch.mkdir()
    shas = {
        f"pg{i}": TarStream(make_bag(watch / f"pg{i}", seed=40 + i, intervention=i == 1)).sha256() for i in range(2)
    }
    token = hub.token_file("car-pg", tmp_path)
    done = run_bridge(watch, hub, token, tmp_path / "st", "--no-models", "--chunk-bytes", "65536")
    assert done.returncode == 0, done.stderr
    hub.stop()  # the catalog lives in PostgreSQL, not in the hub process or its root
    hub.start()
    ls = subprocess.run(
        [sys.executable, "-m", "roadloop_hub", "ls", "--root", str(hub.root), "--db", pg_url, "--json"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert ls.returncode == 0, ls.stderr
    rows = json.loads(ls.stdout)
    assert {r["bag_name"]: r["sha256"] for r in rows} == shas
    assert rows[0]["bag_name"] == "pg1"  # the disengagement went first
    assert not (hub.root / "catalog.db").exists()
    again = run_bridge(watch, hub, token, tmp_path / "st2", "--no-models", "--chunk-bytes", "65536")
    assert again.returncode == 0 and "0 chunk(s) sent" in again.stdout  # known content: acknowledged, not re-sent


def test_catalog_statement_errors_do_not_poison_the_connection(pg_url: str, tmp_path: Path) -> None:
    from roadloop_hub.db import open_database
    from roadloop_hub.errors import CatalogError

    db = open_database(pg_url, tmp_path)
    try:
        with pytest.raises(CatalogError, match="postgresql catalog"):
            db.query("SELECT no_such_column FROM tokens")
        assert db.query("SELECT COUNT(*) AS n FROM tokens")[0]["n"] >= 0
        insert = "INSERT INTO releases (channel, seq, bundle_id, action, principal, at) VALUES (?, ?, ?, ?, ?, ?)"
        with pytest.raises(CatalogError), db.transaction():
            db.execute(insert, ("x", 1, "b", "publish", "p", 0.0))
            db.execute(insert, ("x", 1, "b", "publish", "p", 0.0))
        assert db.query("SELECT COUNT(*) AS n FROM releases WHERE channel = 'x'")[0]["n"] == 0  # all or nothing
    finally:
        db.close()
