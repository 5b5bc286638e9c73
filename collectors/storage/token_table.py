"""The `tokens` table of the collector's and the central's stores: bearer tokens by hash.

Only a token's SHA-256 is kept (collectors/web/auth.py makes and checks them), with its role,
a unique name and when it was made.
"""

from __future__ import annotations

import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any

TOKENS_SCHEMA = """
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY, hash TEXT UNIQUE NOT NULL, role TEXT NOT NULL,
    created_ns INTEGER NOT NULL);
"""


@dataclass(frozen=True, slots=True)
class StoredToken:
    """An API bearer token as the store keeps it: the SHA-256 of the token, never the token."""

    name: str
    hash: str
    role: str
    created_ns: int


class TokenTable:
    """Token methods for a store class that has `_db`, `_lock` and a `_tx()` transaction."""

    # A dcmeter.collectors.storage.db.Connection (the collector's and the central's stores,
    # SQLite or PostgreSQL): `execute(sql, params)` with `?` marks.
    _db: Any
    _lock: threading.Lock

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def close(self) -> None:
        """Close the store (each store class closes its database)."""
        raise NotImplementedError

    def add_token(self, name: str, digest: str, role: str, now_ns: int) -> bool:
        """Keep a token's hash under a unique name; False if the name is taken."""
        with self._tx() as db:
            if db.execute("SELECT 1 FROM tokens WHERE name = ?", (name,)).fetchone():
                return False
            db.execute("INSERT INTO tokens VALUES (?,?,?,?)", (name, digest, role, now_ns))
        return True

    def token(self, digest: str) -> StoredToken | None:
        """The token with this hash, or None."""
        with self._lock:
            row = self._db.execute(
                "SELECT name, hash, role, created_ns FROM tokens WHERE hash = ?", (digest,)
            ).fetchone()
        return StoredToken(*row) if row else None

    def tokens(self) -> list[StoredToken]:
        """Every token, oldest first."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, hash, role, created_ns FROM tokens ORDER BY created_ns, name"
            ).fetchall()
        return [StoredToken(*r) for r in rows]

    def revoke_token(self, name: str) -> bool:
        """Delete a token by name; False if there is none."""
        with self._tx() as db:
            return bool(db.execute("DELETE FROM tokens WHERE name = ?", (name,)).rowcount == 1)
