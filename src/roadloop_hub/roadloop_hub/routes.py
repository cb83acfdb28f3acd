"""The hub's HTTP API (`/v1/...`): one plain function per route over the `Hub` in `app.state.hub`.

The route paths are `roadloop_core.contract.wire`'s templates (the client formats the same
ones); see docs/fleet.md for the protocol. Auth: `Authorization: Bearer <token>`; no/unknown
token -> 401, wrong role or another vehicle's object -> 403. Each handler can be called
directly with a `Hub` and a `Principal` (the dependencies FastAPI injects).
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Request
from fastapi.responses import FileResponse, JSONResponse
from starlette.concurrency import run_in_threadpool
from starlette.requests import ClientDisconnect

from roadloop_core.contract.wire import (
    PATH_BAG,
    PATH_BAGS,
    PATH_BUNDLE_FILE,
    PATH_CHANNEL,
    PATH_CHUNK,
    PATH_COMPLETE,
    PATH_EVENTS,
    PATH_HEALTH,
    PATH_HISTORY,
    PATH_PROOF,
    PATH_PUBLISH,
    PATH_RECORDING,
    PATH_ROLLBACK,
    PATH_UPLOAD,
    PATH_UPLOADS,
)
from roadloop_hub.auth import Principal
from roadloop_hub.errors import RequestRefused
from roadloop_hub.service import Hub
from roadloop_hub.uploads import store_fault

__all__ = [
    "bag",
    "bags",
    "bundle_file",
    "complete",
    "create_upload",
    "current",
    "events",
    "health",
    "history",
    "list_uploads",
    "prove",
    "publish",
    "put_chunk",
    "recording",
    "rollback",
    "router",
    "upload_status",
]

router = APIRouter()


# -- dependencies ----------------------------------------------------------------------------------
def hub_of(request: Request) -> Hub:
    hub: Hub = request.app.state.hub
    return hub


HubDep = Annotated[Hub, Depends(hub_of)]


def principal(hub: HubDep, authorization: Annotated[str | None, Header()] = None) -> Principal:
    if not authorization:
        raise RequestRefused(401, "missing bearer token (Authorization: Bearer <token>)")
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise RequestRefused(401, "malformed Authorization header, expected 'Bearer <token>'")
    who = hub.authenticate(token.strip())
    if who is None:
        raise RequestRefused(401, "unknown or revoked token")
    return who


Who = Annotated[Principal, Depends(principal)]


def admin(who: Who) -> Principal:
    if not who.is_admin:
        raise RequestRefused(403, "this needs the admin token")
    return who


Admin = Annotated[Principal, Depends(admin)]


async def json_object(request: Request) -> dict[str, Any]:
    try:
        body = await request.json()
    except (ValueError, RecursionError):  # RecursionError: nested deeper than the parser's stack
        raise RequestRefused(400, "request body must be a JSON object (UTF-8, not nested too deeply)") from None
    except ClientDisconnect:
        raise RequestRefused(400, "request body ended early (shorter than its Content-Length)") from None
    if not isinstance(body, dict):
        raise RequestRefused(400, "request body must be a JSON object")
    return body


async def spool(request: Request, directory: Path) -> Path:
    """Stream a request body into a fsynced temp file (bodies here may be far larger than memory should hold)."""
    fd, name = tempfile.mkstemp(dir=directory, suffix=".body")
    try:
        with os.fdopen(fd, "wb") as f:
            async for block in request.stream():
                f.write(block)
            f.flush()
            os.fsync(f.fileno())
    except ClientDisconnect:
        os.unlink(name)
        raise RequestRefused(400, "request body ended early (shorter than its Content-Length)") from None
    except BaseException:
        os.unlink(name)
        raise
    return Path(name)


# -- service ---------------------------------------------------------------------------------------
@router.get(PATH_HEALTH)
def health(hub: HubDep) -> dict[str, Any]:
    return hub.health()


# -- uploads ---------------------------------------------------------------------------------------
@router.post(PATH_UPLOADS, status_code=201)
async def create_upload(request: Request, hub: HubDep, who: Who) -> dict[str, Any]:
    body = await json_object(request)
    return await run_in_threadpool(hub.uploads.create, who, body)


@router.get(PATH_UPLOADS)
def list_uploads(hub: HubDep, who: Who) -> list[dict[str, Any]]:
    return hub.uploads.list_uploads(who)


@router.get(PATH_UPLOAD)
def upload_status(upload_id: str, hub: HubDep, who: Who) -> dict[str, Any]:
    return hub.uploads.status(who, upload_id)


@router.put(PATH_CHUNK, response_model=None)
async def put_chunk(
    upload_id: str,
    idx: int,
    request: Request,
    hub: HubDep,
    who: Who,
    x_chunk_sha256: Annotated[str | None, Header()] = None,
) -> dict[str, Any] | JSONResponse:
    if x_chunk_sha256 is None:
        raise RequestRefused(400, "chunk PUT needs an X-Chunk-Sha256 header")
    slot = await run_in_threadpool(hub.uploads.chunk_slot, who, upload_id, idx, x_chunk_sha256)
    # Hash the body while it streams into its own temp file (as a plain upload would write it); it
    # becomes the held chunk only if it arrived whole with the declared sha256 and none is held there.
    digest, received = hashlib.sha256(), 0
    with hub.uploads.body_for(slot) as body:
        try:
            async for piece in request.stream():
                if received + len(piece) > slot.length:
                    raise RequestRefused(400, f"chunk {idx} must be {slot.length} bytes, got more")
                digest.update(piece)
                if body is not None and piece:
                    body.write(piece)
                received += len(piece)
        except ClientDisconnect:  # the vehicle went away mid-chunk: log it, record nothing
            await run_in_threadpool(hub.uploads.chunk_aborted, who, upload_id, idx)
            return JSONResponse({"detail": f"chunk {idx}: body ended early"}, status_code=400)
        except OSError as err:  # the body could not be written (a full disk): nothing held, send it again
            raise store_fault(f"chunk {idx} of upload {upload_id}", err) from err
        return await run_in_threadpool(hub.uploads.finish_chunk, slot, digest.hexdigest(), received, body)


@router.post(PATH_PROOF)
async def prove(upload_id: str, request: Request, hub: HubDep, who: Who) -> dict[str, Any]:
    body = await json_object(request)
    return await run_in_threadpool(hub.uploads.prove, who, upload_id, body)


@router.post(PATH_COMPLETE)
async def complete(upload_id: str, hub: HubDep, who: Who) -> dict[str, Any]:
    return await run_in_threadpool(hub.uploads.complete, who, upload_id)


@router.get(PATH_EVENTS)
def events(upload_id: str, hub: HubDep, who: Admin) -> list[dict[str, Any]]:
    return hub.uploads.events(who, upload_id)


@router.post(PATH_RECORDING)
async def recording(name: str, request: Request, hub: HubDep, who: Who) -> dict[str, Any]:
    body = await json_object(request)
    return await run_in_threadpool(hub.recordings.assemble, who, name, body)


# -- catalog ---------------------------------------------------------------------------------------
@router.get(PATH_BAGS)
def bags(hub: HubDep, who: Who, vehicle: str | None = None, tag: str | None = None) -> list[dict[str, Any]]:
    return hub.bags.list_bags(who, vehicle, tag)


@router.get(PATH_BAG)
def bag(sha256: str, hub: HubDep, who: Who) -> dict[str, Any]:
    return hub.bags.get_bag(who, sha256)


# -- registry --------------------------------------------------------------------------------------
@router.post(PATH_PUBLISH, status_code=201)
async def publish(channel: str, request: Request, hub: HubDep, who: Admin) -> dict[str, Any]:
    body = await spool(request, hub.store.tmp)
    try:
        return await run_in_threadpool(hub.registry.publish, who, channel, body)
    finally:
        body.unlink(missing_ok=True)


@router.get(PATH_CHANNEL)
def current(channel: str, hub: HubDep, who: Who) -> dict[str, Any]:
    return hub.registry.current(channel)


@router.get(PATH_HISTORY)
def history(channel: str, hub: HubDep, who: Who) -> list[dict[str, Any]]:
    return hub.registry.history(channel)


@router.post(PATH_ROLLBACK)
async def rollback(channel: str, request: Request, hub: HubDep, who: Admin) -> dict[str, Any]:
    body = await json_object(request) if request.headers.get("content-length", "0") != "0" else {}
    version = body.get("to_version")
    if version is not None and (isinstance(version, bool) or not isinstance(version, int)):
        raise RequestRefused(400, "to_version must be an integer")
    return await run_in_threadpool(hub.registry.rollback, who, channel, version)


@router.get(PATH_BUNDLE_FILE)
def bundle_file(bundle_id: str, name: str, hub: HubDep, who: Who) -> FileResponse:
    return FileResponse(hub.registry.bundle_file(bundle_id, name), media_type="application/octet-stream")
