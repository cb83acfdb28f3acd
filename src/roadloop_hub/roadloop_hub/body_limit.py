"""ASGI middleware: refuse (413) a request body over the limit for its route, by header or while it streams."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from fastapi.responses import JSONResponse

from roadloop_hub.config import HubConfig

__all__ = ["BodyLimit", "limit_for"]

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def limit_for(cfg: HubConfig, method: str, path: str) -> int:
    """The largest body a request may carry: a chunk, a bundle tar, or a JSON document."""
    if method == "PUT" and "/chunks/" in path:
        return cfg.max_chunk_bytes
    if method == "POST" and path.endswith("/bundles"):
        return cfg.max_bundle_bytes
    if method == "POST" and path.startswith("/v1/recordings/"):
        return cfg.max_recording_json_bytes
    return cfg.max_json_bytes


class _TooLarge(Exception):
    pass


class BodyLimit:
    def __init__(self, app: ASGIApp, limit: Callable[[str, str], int]) -> None:
        self.app, self.limit = app, limit

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limit(scope["method"], scope["path"])
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
