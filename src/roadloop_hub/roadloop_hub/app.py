"""The hub's FastAPI application: the routes (`routes`), their error answers and the body-size limits.

Every request body is capped (413) by `BodyLimit` before a handler reads it.
"""

from __future__ import annotations

from functools import partial

from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from roadloop_hub.body_limit import BodyLimit, limit_for
from roadloop_hub.errors import CatalogError, RequestRefused
from roadloop_hub.routes import router
from roadloop_hub.service import Hub

__all__ = ["catalog_unavailable", "create_app", "refused"]


async def refused(_: Request, err: Exception) -> JSONResponse:
    """A refusal: its status and `{"detail": ...}` (401 says which scheme to use)."""
    status = err.status if isinstance(err, RequestRefused) else 500
    headers = {"WWW-Authenticate": "Bearer"} if status == 401 else None
    return JSONResponse({"detail": str(err)}, status_code=status, headers=headers)


async def catalog_unavailable(_: Request, err: Exception) -> JSONResponse:
    """The catalog cannot be reached or queried: 503, worth retrying."""
    return JSONResponse({"detail": str(err)}, status_code=503)


def create_app(hub: Hub) -> FastAPI:
    app = FastAPI(title="roadloop hub", version="1", docs_url=None, redoc_url=None, openapi_url=None)
    app.state.hub = hub
    app.add_exception_handler(RequestRefused, refused)
    app.add_exception_handler(CatalogError, catalog_unavailable)
    app.include_router(router)
    app.add_middleware(BodyLimit, limit=partial(limit_for, hub.cfg))
    return app
