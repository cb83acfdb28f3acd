"""Bearer tokens: random, shown once, stored only as sha256 (a token has 256 bits, so no salt/KDF needed)."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from typing import Any

from roadloop_cluster.hub.db import Database
from roadloop_cluster.hub.errors import HubError
from roadloop_vehicle.bridge.wire import check_name

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


def add_token(db: Database, name: str, role: str) -> str:
    """Create a token for vehicle/admin `name`; the plain token is returned once and never stored."""
    try:
        check_name(name, "principal name")
    except ValueError as err:
        raise HubError(str(err)) from None
    if role not in (ADMIN, VEHICLE):
        raise HubError(f"role {role!r} unknown: use {ADMIN} or {VEHICLE}")
    token = f"rl_{secrets.token_urlsafe(32)}"
    with db.transaction():
        db.execute(
            "INSERT INTO tokens (token_hash, principal, role, created, revoked) VALUES (?, ?, ?, ?, 0)",
            (hash_token(token), name, role, time.time()),
        )
    return token


def revoke_tokens(db: Database, name: str) -> int:
    with db.transaction():
        return db.execute("UPDATE tokens SET revoked = 1 WHERE principal = ? AND revoked = 0", (name,))


def list_tokens(db: Database) -> list[dict[str, Any]]:
    return db.query(
        "SELECT principal, role, created, revoked, substr(token_hash, 1, 12) AS hash_prefix FROM tokens "
        "ORDER BY principal, created"
    )


def lookup(db: Database, token: str) -> Principal | None:
    digest = hash_token(token)
    row = db.one("SELECT token_hash, principal, role FROM tokens WHERE token_hash = ? AND revoked = 0", (digest,))
    # The primary-key lookup already matched; compare_digest keeps the final check constant-time anyway.
    if row is None or not hmac.compare_digest(str(row["token_hash"]), digest):
        return None
    return Principal(str(row["principal"]), str(row["role"]))
