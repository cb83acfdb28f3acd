"""The hub's HTTP API (`/v1/...`), a thin FastAPI layer over `Hub` (see docs/fleet.md for the protocol).

Auth: `Authorization: Bearer <token>`; no/unknown token -> 401, wrong role or another
vehicle's object -> 403. Every request body is capped (413) by `BodyLimit` before a
handler reads it.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Header, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from roadloop_cluster.hub.auth import Principal, lookup
from roadloop_cluster.hub.errors import CatalogError, RequestRefused
from roadloop_cluster.hub.service import Hub

__all__ = ["BodyLimit", "create_app"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


class _TooLarge(Exception):
    pass


class BodyLimit:
    """ASGI middleware: refuse (413) a body over the limit for its route, by header or while streaming."""

    def __init__(self, app: ASGIApp, limit_for: Callable[[str, str], int]) -> None:
        self.app, self.limit_for = app, limit_for

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit_for(scope["method"], scope["path"])
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > limit):
            await _reply(send, 413, f"request body over the limit of {limit} bytes for {scope['path']}")
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            msg = await receive()
            if msg["type"] == "http.request":
                seen += len(msg.get("body", b""))
                if seen > limit:
                    raise _TooLarge
            return msg

        async def tracking(msg: Message) -> None:
            nonlocal started
            started = started or msg["type"] == "http.response.start"
            await send(msg)

        try:
            await self.app(scope, counted, tracking)
        except _TooLarge:
            if not started:
                await _reply(send, 413, f"request body over the limit of {limit} bytes for {scope['path']}")


async def _reply(send: Send, status: int, detail: str) -> None:
    body = JSONResponse({"detail": detail}).body
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _spool(request: Request, directory: Path) -> Path:
    """Stream a request body into a temp file (bodies here may be far larger than memory should hold)."""
    fd, name = tempfile.mkstemp(dir=directory, suffix=".body")
    try:
        with os.fdopen(fd, "wb") as f:
            async for block in request.stream():
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


def _principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
    if not authorization:
        raise RequestRefused(401, "missing bearer token (Authorization: Bearer <token>)")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RequestRefused(401, "malformed Authorization header, expected 'Bearer <token>'")
    hub: Hub = request.app.state.hub
    who = lookup(hub.db, token.strip())
    if who is None:
        raise RequestRefused(401, "unknown or revoked token")
    return who


Who = Annotated[Principal, Depends(_principal)]


def _admin(who: Who) -> Principal:
    if not who.is_admin:
        raise RequestRefused(403, "this needs the admin token")
    return who


Admin = Annotated[Principal, Depends(_admin)]


def create_app(hub: Hub) -> FastAPI:
    app = FastAPI(title="roadloop hub", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.hub = hub
    cfg = hub.cfg

    @app.exception_handler(RequestRefused)
    async def refused(_: Request, err: RequestRefused) -> JSONResponse:
        headers = {"WWW-Authenticate": "Bearer"} if err.status == 401 else None
        return JSONResponse({"detail": str(err)}, status_code=err.status, headers=headers)

    @app.exception_handler(CatalogError)
    async def catalog_down(_: Request, err: CatalogError) -> JSONResponse:
        return JSONResponse({"detail": str(err)}, status_code=503)

    async def json_body(request: Request) -> dict[str, Any]:
        try:
            body = await request.json()
        except ValueError:
            raise RequestRefused(400, "request body must be a JSON object") from None
        if not isinstance(body, dict):
            raise RequestRefused(400, "request body must be a JSON object")
        return body

    @app.get("/v1/health")
    def health() -> dict[str, Any]:
        return {"ok": True, "db": hub.db.kind}

    @app.post("/v1/uploads", status_code=201)
    async def create_upload(request: Request, who: Who) -> dict[str, Any]:
        body = await json_body(request)
        return await run_in_threadpool(hub.create_upload, who, body)

    @app.get("/v1/uploads")
    def list_uploads(who: Who) -> list[dict[str, Any]]:
        return hub.uploads(who)

    @app.get("/v1/uploads/{upload_id}")
    def upload_status(upload_id: str, who: Who) -> dict[str, Any]:
        return hub.upload_status(who, upload_id)

    @app.put("/v1/uploads/{upload_id}/chunks/{idx}", response_model=None)
    async def put_chunk(
        upload_id: str,
        idx: int,
        request: Request,
        who: Who,
        x_chunk_sha256: Annotated[str | None, Header()] = None,
    ) -> dict[str, Any] | JSONResponse:
        if x_chunk_sha256 is None:
            raise RequestRefused(400, "chunk PUT needs an X-Chunk-Sha256 header")
        slot = await run_in_threadpool(hub.chunk_slot, who, upload_id, idx, x_chunk_sha256)
        # Hash and write the body while it streams in (as a plain upload would), never past the slot:
        # a bad body lands only in the not-yet-held region of this chunk and is not recorded.
        digest, received = hashlib.sha256(), 0
        fd = os.open(hub.store.part_path(upload_id), os.O_RDWR | os.O_CREAT, 0o640) if slot.write else -1
        try:
            async for piece in request.stream():
                if received + len(piece) > slot.length:
                    raise RequestRefused(400, f"chunk {idx} must be {slot.length} bytes, got more")
                digest.update(piece)
                if fd >= 0 and piece:
                    os.pwrite(fd, piece, slot.offset + received)
                received += len(piece)
        except ClientDisconnect:  # the vehicle went away mid-chunk: log it, record nothing
            await run_in_threadpool(hub.chunk_aborted, who, upload_id, idx)
            return JSONResponse({"detail": f"chunk {idx}: body ended early"}, status_code=400)
        finally:
            if fd >= 0:
                os.close(fd)
        return await run_in_threadpool(hub.finish_chunk, slot, digest.hexdigest(), received)

    @app.post("/v1/uploads/{upload_id}/complete")
    async def complete(upload_id: str, who: Who) -> dict[str, Any]:
        return await run_in_threadpool(hub.complete, who, upload_id)

    @app.get("/v1/uploads/{upload_id}/events")
    def events(upload_id: str, who: Admin) -> list[dict[str, Any]]:
        return hub.chunk_events(who, upload_id)

    @app.get("/v1/bags")
    def bags(who: Who, vehicle: str | None = None, tag: str | None = None) -> list[dict[str, Any]]:
        return hub.list_bags(who, vehicle, tag)

    @app.get("/v1/bags/{sha256}")
    def bag(sha256: str, who: Who) -> dict[str, Any]:
        return hub.get_bag(who, sha256)

    @app.post("/v1/channels/{channel}/bundles", status_code=201)
    async def publish(channel: str, request: Request, who: Admin) -> dict[str, Any]:
        body = await _spool(request, hub.store.tmp)
        try:
            return await run_in_threadpool(hub.publish, who, channel, body)
        finally:
            body.unlink(missing_ok=True)

    @app.get("/v1/channels/{channel}")
    def current(channel: str, who: Who) -> dict[str, Any]:
        return hub.current(channel)

    @app.get("/v1/channels/{channel}/history")
    def history(channel: str, who: Who) -> list[dict[str, Any]]:
        return hub.history(channel)

    @app.post("/v1/channels/{channel}/rollback")
    async def rollback(channel: str, request: Request, who: Admin) -> dict[str, Any]:
        body = await json_body(request) if request.headers.get("content-length", "0") != "0" else {}
        version = body.get("to_version")
        if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
            raise RequestRefused(400, "to_version must be an integer")
        return await run_in_threadpool(hub.rollback, who, channel, version)

    @app.get("/v1/bundles/{bundle_id}/files/{name}")
    def bundle_file(bundle_id: str, name: str, who: Who) -> FileResponse:
        return FileResponse(hub.bundle_file(bundle_id, name), media_type="application/octet-stream")

    @app.put("/v1/admin/sink")
    async def sink(request: Request, who: Admin) -> dict[str, Any]:
        """A plain one-request upload (body to a fsynced file, then dropped): the benchmark's baseline."""
        body = await _spool(request, hub.store.tmp)
        size = body.stat().st_size
        body.unlink()
        return {"bytes": size}

    def limit_for(method: str, path: str) -> int:
        if method == "PUT" and "/chunks/" in path:
            return cfg.max_chunk_bytes
        if method == "POST" and path.endswith("/bundles"):
            return cfg.max_bundle_bytes
        if path == "/v1/admin/sink":
            return cfg.max_upload_bytes
        return cfg.max_json_bytes

    app.add_middleware(BodyLimit, limit_for=limit_for)
    return app
