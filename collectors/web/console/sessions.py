"""The console's sign-in sessions: kept in memory, keyed by a random id in a cookie.

A browser signs in once with a bearer token (collectors/web/auth.py checks it); the collector
then keeps a `Session` (the token's name and role, a CSRF token, when it was last used) under
a random 256-bit id, and the browser holds only that id in the `dcmeter_session` cookie
(HttpOnly, SameSite=Strict): the bearer token never reaches a cookie, a page or a log.

Sessions live in this process's memory only: a restart of the collector signs everyone out
(docs/console.md). A session ends at sign-out or after `IDLE_S` without a request. The role
is the one the token had at sign-in; every request looks the token's hash up in the store
again (console/routes.py), so revoking the token ends its sessions at once.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from dcmeter.collectors.web.auth import Role

COOKIE = "dcmeter_session"
# A session ends after this long without a request, s (12 h: a shift; a 24 h window is
# watched by more than one).
IDLE_S = 12 * 3600.0
# Most sessions kept at once; past it the least recently used is dropped (a flood of
# sign-ins cannot grow memory without bound).
MAX_SESSIONS = 1000


@dataclass(slots=True)
class Session:
    """One signed-in browser: who (the token's name and role), its CSRF token, last use (s)."""

    name: str
    role: Role
    token_sha256: str  # the token's hash, to end the session when the token is revoked
    csrf: str = field(default_factory=lambda: secrets.token_urlsafe(32))
    used: float = 0.0

    def csrf_ok(self, sent: str | None) -> bool:
        """Whether `sent` is this session's CSRF token (compared in constant time)."""
        return sent is not None and secrets.compare_digest(sent.encode(), self.csrf.encode())


class Sessions:
    """The sessions of this process, by id; thread-safe (routes run in worker threads)."""

    def __init__(self, idle_s: float = IDLE_S, clock: Callable[[], float] = time.monotonic,
                 max_sessions: int = MAX_SESSIONS) -> None:
        """Sessions ending after `idle_s` without use, by `clock` (s)."""
        self.idle_s, self.clock, self.max_sessions = idle_s, clock, max_sessions
        self._by_id: dict[str, Session] = {}
        self._lock = threading.Lock()

    def start(self, name: str, role: Role, token_sha256: str) -> tuple[str, Session]:
        """A new session for the token `name` with `role`; returns (cookie id, session)."""
        sid = secrets.token_urlsafe(32)
        s = Session(name, role, token_sha256, used=self.clock())
        with self._lock:
            self._expire()
            while len(self._by_id) >= self.max_sessions:
                oldest = min(self._by_id, key=lambda k: self._by_id[k].used)
                del self._by_id[oldest]
            self._by_id[sid] = s
        return sid, s

    def get(self, sid: str | None) -> Session | None:
        """The live session with id `sid` (its idle clock restarted), or None."""
        if not sid:
            return None
        now = self.clock()
        with self._lock:
            s = self._by_id.get(sid)
            if s is None:
                return None
            if now - s.used > self.idle_s:
                del self._by_id[sid]
                return None
            s.used = now
            return s

    def end(self, sid: str | None) -> Session | None:
        """End the session `sid`; return it (None if there was none)."""
        with self._lock:
            return self._by_id.pop(sid, None) if sid else None

    def __len__(self) -> int:
        with self._lock:
            return len(self._by_id)

    def _expire(self) -> None:
        now = self.clock()
        for k in [k for k, s in self._by_id.items() if now - s.used > self.idle_s]:
            del self._by_id[k]
