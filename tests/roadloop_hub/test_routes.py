"""The route handlers are plain functions: called directly with a real `Hub` and the `Principal` FastAPI injects."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from roadloop_hub import Hub, HubConfig, Principal, RequestRefused, add_token, open_hub, routes
from roadloop_hub.body_limit import limit_for

CAR = Principal("car1", "vehicle")
ADMIN = Principal("boss", "admin")


@pytest.fixture
def hub(tmp_path: Path) -> Iterator[Hub]:
    hub = open_hub(tmp_path / "hub", HubConfig())
    yield hub
    hub.close()


def _status(err: pytest.ExceptionInfo[RequestRefused]) -> int:
    return err.value.status


def test_health_and_auth_dependencies(hub: Hub) -> None:
    assert routes.health(hub) == {"ok": True, "db": "sqlite"}
    token = add_token(hub.catalog, "car1", "vehicle")
    assert routes.principal(hub, f"Bearer {token}") == CAR
    assert routes.principal(hub, f"bearer  {token} ") == CAR  # scheme case and spaces as HTTP allows
    for header, why in [
        (None, "missing"),
        ("Basic abc", "malformed"),
        ("Bearer", "malformed"),
        ("Bearer rl_x", "unknown"),
    ]:
        with pytest.raises(RequestRefused, match=why) as err:
            routes.principal(hub, header)
        assert _status(err) == 401
    with pytest.raises(RequestRefused) as err:
        routes.admin(CAR)
    assert _status(err) == 403
    assert routes.admin(ADMIN) == ADMIN


def test_upload_handlers(hub: Hub) -> None:
    data = b"x" * 70000
    body = {"bag_name": "b", "size": len(data), "sha256": hashlib.sha256(data).hexdigest(), "chunk_size": 65536}
    up = hub.uploads.create(CAR, body)
    assert routes.upload_status(up["upload_id"], hub, CAR)["n_chunks"] == 2
    assert [u["id"] for u in routes.list_uploads(hub, CAR)] == [up["upload_id"]]
    with pytest.raises(RequestRefused, match="2 chunk\\(s\\) missing") as err:
        asyncio.run(routes.complete(up["upload_id"], hub, CAR))
    assert _status(err) == 409
    assert routes.events(up["upload_id"], hub, ADMIN) == []
    assert routes.bags(hub, CAR) == [] and routes.bags(hub, ADMIN, vehicle="car1", tag="x") == []


def test_registry_handlers(hub: Hub) -> None:
    with pytest.raises(RequestRefused, match="no release yet") as err:
        routes.current("production", hub, CAR)
    assert _status(err) == 404
    assert routes.history("candidate", hub, CAR) == []
    with pytest.raises(RequestRefused) as err:
        routes.bundle_file("a" * 64, "policy.onnx", hub, CAR)
    assert _status(err) == 404
    with pytest.raises(RequestRefused) as err:
        routes.bundle_file("a" * 64, "..", hub, CAR)
    assert _status(err) == 400


@pytest.mark.parametrize(
    ("method", "path", "limit"),
    [
        ("PUT", "/v1/uploads/u/chunks/3", 16 << 20),
        ("POST", "/v1/channels/production/bundles", 512 << 20),
        ("POST", "/v1/uploads", 64 << 10),
        ("POST", "/v1/channels/production/rollback", 64 << 10),
        ("GET", "/v1/bags", 64 << 10),
    ],
)
def test_body_limit_per_route(method: str, path: str, limit: int) -> None:
    assert limit_for(HubConfig(), method, path) == limit
