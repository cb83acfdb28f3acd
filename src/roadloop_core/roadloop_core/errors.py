"""Errors raised by roadloop_core; every package's errors derive from RoadloopError.

The CLI turns any RoadloopError into one line on stderr and exit code 2.
"""

from __future__ import annotations

__all__ = [
    "BagDamagedError",
    "BagError",
    "BagUnfinishedError",
    "BagUnsupportedError",
    "BundleError",
    "ConfigError",
    "HubClientError",
    "HubRefused",
    "HubUnavailable",
    "RoadloopError",
    "TypesysError",
]


class RoadloopError(Exception):
    """Base of every error roadloop reports to a user as one line (exit 2)."""


class ConfigError(RoadloopError):
    """A configuration file or value is missing or invalid."""


class TypesysError(RoadloopError):
    """A message type is unknown or its definition cannot be parsed."""


class BagError(RoadloopError):
    """A bag cannot be read, written or reindexed."""


class BagUnfinishedError(BagError):
    """The bag was never closed (no metadata.yaml, or `.active` files): `roadloop bag reindex` it."""


class BagDamagedError(BagError):
    """A storage file is truncated or corrupt."""


class BagUnsupportedError(BagError):
    """The bag is intact but uses something we cannot read (serialization format, plugin, version)."""


class BundleError(RoadloopError):
    """A model bundle is malformed, tampered with or wrongly signed."""


class HubClientError(RoadloopError):
    """Talking to the hub failed (`roadloop_core.hub_client`)."""


class HubUnavailable(HubClientError):
    """The hub could not be reached or answered 5xx/429: worth retrying after a backoff."""


class HubRefused(HubClientError):
    """The hub answered 4xx: retrying the same request will not help (`status` says why)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
