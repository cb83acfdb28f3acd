"""Bearer tokens: random, shown once, stored only as sha256 (a token has 256 bits, so no salt/KDF needed)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass

from roadloop_core.contract.wire import check_name
from roadloop_hub.catalog import TokenCatalog, TokenRecord
from roadloop_hub.errors import HubError

__all__ = ["ADMIN", "VEHICLE", "Principal", "add_token", "hash_token", "list_tokens", "lookup", "revoke_tokens"]

ADMIN = "admin"
VEHICLE = "vehicle"


@dataclass(frozen=True)
class Principal:
    name: str
    role: str

    @property
    def is_admin(self) -> bool:
        return self.role == ADMIN


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def add_token(tokens: TokenCatalog, name: str, role: str) -> str:
    """Create a token for vehicle/admin `name`; the plain token is returned once and never stored."""
    try:
        check_name(name, "principal name")
    except ValueError as err:
        raise HubError(str(err)) from None
    if role not in (ADMIN, VEHICLE):
        raise HubError(f"role {role!r} unknown: use {ADMIN} or {VEHICLE}")
    token = f"rl_{secrets.token_urlsafe(32)}"
    tokens.add_token(TokenRecord(hash_token(token), name, role, time.time()))
    return token


def revoke_tokens(tokens: TokenCatalog, name: str) -> int:
    return tokens.revoke_tokens(name)


def list_tokens(tokens: TokenCatalog) -> list[TokenRecord]:
    return tokens.list_tokens()


def lookup(tokens: TokenCatalog, token: str) -> Principal | None:
    digest = hash_token(token)
    row = tokens.active_token(digest)
    # The lookup by hash already matched; compare_digest keeps the final check constant-time anyway.
    if row is None or not hmac.compare_digest(row.token_hash, digest):
        return None
    return Principal(row.principal, row.role)
