"""Bearer tokens with roles on the collector's windows API, and the `collector token` commands.

Roles: an `engineer` opens and stops windows and records AI runs (and reads); a `reader` only
reads. A token is `dcm_` and 43 random URL-safe characters (256 bits); the store keeps only
its SHA-256, its role, a name and when it was made, so a copy of the database grants nothing.
Agents' batches are signed with their own keys and need no token; /api/v1/health needs none.
"""

from __future__ import annotations

import hashlib
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import Depends, HTTPException
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from dcmeter.collectors.storage.token_table import TokenTable

Role = Literal["engineer", "reader"]
ROLES: tuple[Role, ...] = ("engineer", "reader")
# What each role may do; an engineer may do everything a reader may.
GRANTS: dict[Role, frozenset[Role]] = {
    "engineer": frozenset({"engineer", "reader"}),
    "reader": frozenset({"reader"}),
}
PREFIX = "dcm_"
NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
CHALLENGE = {"WWW-Authenticate": "Bearer"}


@dataclass(frozen=True, slots=True)
class Principal:
    """Who made a request: the token's name and role (`auth-off` when auth is off)."""

    name: str
    role: Role


class Refusal(HTTPException):
    """A request refused for its token: the HTTP answer, a reason code and the token's name
    when it is known (for the audit trail, collectors/storage/audit.py)."""

    def __init__(
        self, status: int, detail: str, reason: str, actor: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> None:
        super().__init__(status, detail, headers)
        self.reason, self.actor = reason, actor


def token_hash(token: str) -> str:
    """The SHA-256 (hex) of a token: the only form the store keeps."""
    return hashlib.sha256(token.encode()).hexdigest()


def create_token(store: TokenTable, role: Role, name: str | None = None) -> tuple[str, str]:
    """Make a random token with `role`, keep its hash; return (name, token). Shown once."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {', '.join(ROLES)}")
    if name is not None and not NAME.match(name):
        raise ValueError(
            f"token name {name!r}: 1 to 64 characters, letters, digits and _ . @ -,"
            " starting with a letter or digit"
        )
    taken = {t.name for t in store.tokens()}
    if name is None:
        name = next(f"{role}-{i}" for i in range(1, len(taken) + 2) if f"{role}-{i}" not in taken)
    token = PREFIX + secrets.token_urlsafe(32)
    if not store.add_token(name, token_hash(token), role, time.time_ns()):
        raise ValueError(f"a token named {name!r} exists; revoke it first or choose another name")
    return name, token


class Auth:
    """FastAPI dependencies that check the bearer token of a request against the store."""

    def __init__(self, store: TokenTable, enabled: bool = True) -> None:
        self.store = store
        self.enabled = enabled
        self._bearer = HTTPBearer(auto_error=False, description="a token from"
                                  " `dcmeter collector token create`")

    def principal(self, token: str | None, role: Role) -> Principal:
        """Who holds `token` (None: none sent), if its role grants `role`; else HTTPException:
        401 no or unknown token, 403 a role too weak. Reads the store: call off the loop."""
        if not self.enabled:
            return Principal("auth-off", "engineer")
        if not token:
            raise Refusal(401, "no bearer token: send 'Authorization: Bearer <token>'",
                          "no_token", headers=CHALLENGE)
        found = self.store.token(token_hash(token))
        if found is None:
            raise Refusal(401, "unknown or revoked bearer token", "unknown_token",
                          headers=CHALLENGE)
        have: Role = "engineer" if found.role == "engineer" else "reader"
        if role not in GRANTS[have]:
            raise Refusal(
                403, f"token {found.name!r} has role {have!r}; this needs role {role!r}",
                "role_too_weak", found.name,
            )
        return Principal(found.name, have)

    def require(self, role: Role) -> Callable[..., Principal]:
        """A dependency admitting tokens whose role grants `role`: 401 unknown, 403 too weak."""
        bearer = self._bearer

        def check(
            creds: HTTPAuthorizationCredentials | None = Depends(bearer),  # noqa: B008
        ) -> Principal:
            return self.principal(None if creds is None else creds.credentials, role)

        return check


def bearer_token(authorization: str | None) -> str | None:
    """The token of an `Authorization: Bearer <token>` header value, or None (as HTTPBearer)."""
    scheme, _, token = (authorization or "").partition(" ")
    return (token.strip() or None) if scheme.lower() == "bearer" else None
