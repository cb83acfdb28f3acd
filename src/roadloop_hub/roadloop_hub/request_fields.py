"""Checks of the fields a request carries: anything unsafe or malformed is refused (400) before it is used."""

from __future__ import annotations

from typing import Any

from roadloop_core.contract.wire import CHANNEL_RE, SHA256_RE, check_name
from roadloop_hub.errors import RequestRefused

__all__ = ["channel_field", "int_field", "name_field", "piece_field", "sha256_field"]


def name_field(value: Any, what: str) -> str:
    """A safe name (one path component, `wire.check_name`)."""
    if not isinstance(value, str):
        raise RequestRefused(400, f"{what} must be a string")
    try:
        return check_name(value, what)
    except ValueError as err:
        raise RequestRefused(400, str(err)) from None


def piece_field(value: Any) -> str:
    """The one file of a recording an upload carries ("" = the upload is a whole bag)."""
    return "" if value in (None, "") else name_field(value, "piece")


def sha256_field(value: Any, what: str) -> str:
    if not isinstance(value, str) or not SHA256_RE.match(value):
        raise RequestRefused(400, f"{what} must be 64 lowercase hex digits")
    return value


def int_field(value: Any, what: str, lo: int, hi: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise RequestRefused(400, f"{what} must be an integer in [{lo}, {hi}]")
    return value


def channel_field(channel: str, channels: list[str]) -> str:
    """A channel the hub is configured with (404 otherwise, naming the ones it has)."""
    if not CHANNEL_RE.match(channel) or channel not in channels:
        raise RequestRefused(404, f"channel {channel!r} unknown; channels: {', '.join(channels)}")
    return channel
