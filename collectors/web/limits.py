"""Refuse a request before its body is read: bearer token first, then size, then time.

FastAPI reads and parses a request's body before it runs the route's dependencies, so the
token check of collectors/web/auth.py alone lets anyone make the collector hold and parse a body
of any size. This pure-ASGI middleware sits in front of the routes and, from the request head
alone, answers
- 401/403 for the windows API without a token that grants the route's role (the same check
  as the routes' own dependency, which stays as a second line),
- 413 for a body declared over the route's limit (every route but /api/v1/batches, which
  keeps its own, `collector.max_batch_mb`, and records the refusal),
and while the body streams in, 413 once it passes the limit and 408 when it has not arrived
within `collector.body_timeout_s` of the head. A refusal sent while the client still has a
large body to send closes the connection, so the rest is never read.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
from fastapi import HTTPException
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from dcmeter.base.ratelimit import LogLimiter
from dcmeter.collectors.config import CollectorSection
from dcmeter.collectors.storage import audit
from dcmeter.collectors.web.auth import Auth, Refusal, Role, bearer_token

# Routes whose body limit is their own (the batch route's max_batch_mb, with its refusal
# recorded as a rejected batch).
OWN_LIMIT = frozenset({"/api/v1/batches"})
# A refused request whose unread rest is at most this, bytes, keeps its connection (uvicorn
# discards the rest); a larger or unknown rest closes it.
DISCARD_MAX = 64 * 1024


def needed_role(method: str, path: str) -> Role | None:
    """The role a request needs (the windows, sources and calibrations APIs'), or None for an
    open route."""
    for api in ("/api/v1/windows", "/api/v1/sources", "/api/v1/calibrations"):
        if path == api or path.startswith(api + "/"):
            return "reader" if method in ("GET", "HEAD") else "engineer"
    return None


@dataclass
class _Body:
    """What is known of one request's body while it streams in."""

    declared: int | None  # Content-Length; None when chunked or absent
    expected: bool  # whether a body follows the head at all
    limit: int | None
    by: float  # monotonic deadline for the whole body
    received: int = 0
    done: bool = field(init=False)
    started: bool = False  # a response has started
    answered: bool = False  # this middleware answered; the app's answer is dropped

    def __post_init__(self) -> None:
        self.done = not self.expected

    def close_after(self) -> bool:
        """Whether the connection must close after the answer: a large or unknown unread rest."""
        if self.done:
            return False
        return self.declared is None or self.declared - self.received > DISCARD_MAX


class Guard:
    """ASGI middleware: token, size and time checks made before a body is read."""

    def __init__(
        self, app: ASGIApp, auth: Auth, max_body: int, body_timeout_s: float,
        clock: Callable[[], float] = time.monotonic, quiet: LogLimiter | None = None,
    ) -> None:
        """Guard `app` with `auth`'s tokens, `max_body` bytes per body, `body_timeout_s`;
        `quiet` rate-limits the audit lines of refusals (one per reason and client a minute)."""
        self.app = app
        self.auth = auth
        self.max_body = max_body
        self.body_timeout_s = body_timeout_s
        self.clock = clock
        self.quiet = quiet or LogLimiter()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Check the head, then pass the request on with a guarded body."""
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        headers = Headers(scope=scope)
        body = self._body(scope, headers)
        role = needed_role(scope["method"], scope["path"])
        if role is not None and self.auth.enabled:
            token = bearer_token(headers.get("authorization"))
            try:
                if token is None:  # no token, no store access
                    self.auth.principal(None, role)
                else:  # the token table is behind the store's lock: off the loop
                    await anyio.to_thread.run_sync(self.auth.principal, token, role)
            except HTTPException as exc:
                self._refused(scope, exc.status_code, getattr(exc, "reason", "refused"),
                              exc.actor if isinstance(exc, Refusal) else None)
                await _answer(send, body, exc.status_code, exc.detail, exc.headers)
                return
        if body.limit is not None and body.declared is not None and body.declared > body.limit:
            self._refused(scope, 413, "body_too_large")
            await _answer(send, body, 413, _too_large(body.declared, body.limit, "declared"))
            return

        async def guarded_receive() -> Message:
            if body.answered:
                return {"type": "http.disconnect"}
            if body.done:
                return await receive()
            try:
                with anyio.fail_after(max(body.by - self.clock(), 0.0)):
                    message = await receive()
            except TimeoutError:
                self._refused(scope, 408, "body_timeout")
                await _answer(send, body, 408, f"request body not received within"
                              f" {self.body_timeout_s:g} s (collector.body_timeout_s)")
                return {"type": "http.disconnect"}
            if message["type"] == "http.request":
                body.received += len(message.get("body", b""))
                body.done = not message.get("more_body", False)
                if body.limit is not None and body.received > body.limit:
                    self._refused(scope, 413, "body_too_large")
                    await _answer(send, body, 413,
                                  _too_large(body.received, body.limit, "received"))
                    return {"type": "http.disconnect"}
            else:
                body.done = True
            return message

        async def guarded_send(message: Message) -> None:
            if body.answered:
                return
            if message["type"] == "http.response.start":
                body.started = True
                if body.close_after():
                    message = {**message, "headers": [*message.get("headers", []),
                                                      (b"connection", b"close")]}
            await send(message)

        try:
            await self.app(scope, guarded_receive, guarded_send)
        except Exception:
            if not body.answered:
                raise
            # The app failed on the body it was denied after this middleware answered.

    def _refused(self, scope: Scope, status: int, reason: str, actor: str | None = None) -> None:
        audit.refused(self.quiet, status, reason, scope["method"], scope["path"],
                      audit.client_of(scope), actor)

    def _body(self, scope: Scope, headers: Headers) -> _Body:
        length = headers.get("content-length")
        declared = int(length) if length is not None and length.isdigit() else None
        chunked = "chunked" in headers.get("transfer-encoding", "").lower()
        limit = None if scope["path"] in OWN_LIMIT else self.max_body
        return _Body(declared, chunked or bool(declared), limit,
                     self.clock() + self.body_timeout_s)


def _too_large(size: int, limit: int, how: str) -> str:
    return (f"request body of {size} bytes {how}, over the {limit}-byte limit"
            " (collector.max_body_kb)")


async def _answer(
    send: Send, body: _Body, status: int, detail: Any,
    headers: Mapping[str, str] | None = None,
) -> None:
    """Answer `{"detail": ...}` with `status` unless a response has started; close if the
    client still has a large body to send."""
    if body.started or body.answered:
        body.answered = True
        return
    raw = [(b"content-type", b"application/json")]
    raw += [(k.lower().encode(), v.encode()) for k, v in (headers or {}).items()]
    if body.close_after():
        raw.append((b"connection", b"close"))
    payload = json.dumps({"detail": detail}).encode()
    raw.append((b"content-length", str(len(payload)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": payload})
    body.started = body.answered = True


@dataclass(frozen=True, slots=True)
class AppLimits:
    """The API's own limits (uvicorn's: collectors/web/http_server.py); see CollectorSection."""

    max_body_bytes: int = 256 * 1024
    body_timeout_s: float = 30.0
    read_timeout_s: float = 60.0
    max_open_windows: int = 32

    @classmethod
    def of(cls, c: CollectorSection) -> AppLimits:
        """The limits a `[collector]` section sets."""
        return cls(c.max_body_kb * 1024, c.body_timeout_s, c.read_timeout_s, c.max_open_windows)
