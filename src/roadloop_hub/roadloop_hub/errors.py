"""Errors of the hub (all RoadloopError: one line and exit 2 at the CLI)."""

from __future__ import annotations

from roadloop_core.errors import RoadloopError

__all__ = ["CatalogError", "HubError", "RequestRefused", "StoreError"]


class HubError(RoadloopError):
    """Base of the hub's errors."""


class CatalogError(HubError):
    """The catalog database cannot be opened or queried."""


class StoreError(HubError):
    """An uploaded object or bundle is malformed, or the blob store cannot be written."""


class RequestRefused(HubError):
    """A request the hub answers with an HTTP error status (the message is the response's detail)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
