"""Ship sealed batches to the collector: oldest first, deleted only on acknowledgement.

While the collector does not answer (connection refused or reset, a timeout, or 502/503/504
from a proxy in front of it), the shipper probes GET /api/v1/health once per `probe_s`
(min(interval, 5 s)) and ships as soon as a probe is answered, so shipping resumes within
one probe interval of the collector's return; a collector that answers but refuses (401,
403, 500, a TLS failure) is retried with exponential backoff instead. A request on a
kept-alive connection that the server closed as it was reused is sent once more at once.
"""

from __future__ import annotations

import asyncio
import random
import sqlite3
import ssl
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import structlog

from dcmeter.agent.buffer import Buffer
from dcmeter.base.tls import describe

log = structlog.get_logger("dcmeter.agent.ship")

CONTENT_TYPE = "application/x-msgpack"
# Refused for good: retrying the same bytes can never succeed. Set aside, never deleted.
PERMANENT = {400, 409, 413}
MTLS_HINT = (
    " (the collector closed the connection: if it requires client certificates, set"
    " [collector] client_cert_file and client_key_file)"
)


# Answers that mean the collector itself is not answering yet: a proxy in front of it.
UNAVAILABLE = {502, 503, 504}
PROBE_PATH = "/api/v1/health"
# Longest wait between probes while batches wait for a collector that does not answer, s.
PROBE_MAX_S = 5.0
# What a request on a pooled connection raises when the server closed that connection as it
# was reused (uvicorn's keep-alive timeout racing the next request): no response byte came.
STALE = (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError, httpx.ConnectError)


def probe_interval(interval_s: float) -> float:
    """The probe interval of an agent polling every `interval_s`, s: one tick, at most 5 s."""
    return min(interval_s, PROBE_MAX_S)


class Shipper:
    """Posts pending batches; probes a collector that does not answer every `probe_s`, backs
    off exponentially with full jitter from one that refuses."""

    def __init__(
        self,
        buffer: Buffer,
        url: str,
        timeout_s: float = 10.0,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 300.0,
        client: httpx.AsyncClient | None = None,
        rng: Callable[[], float] = random.random,
        tls: ssl.SSLContext | None = None,
        ca_file: Path | None = None,
        on_ack: Callable[[int], None] | None = None,
        probe_s: float = PROBE_MAX_S,
        keep_alive_s: float = 4.0,
    ) -> None:
        """`tls` verifies the collector (default: the system CA store); `ca_file` is named
        in the message logged when its certificate does not verify; `on_ack(seq)` is called
        after the collector acknowledged batch `seq` (2xx); `probe_s`: the wait between
        probes of a collector that does not answer, s; `keep_alive_s`: how long an idle
        connection is kept for reuse, s (below the collector's keep-alive timeout)."""
        self.buffer = buffer
        self.url = url.rstrip("/")
        self.endpoint = self.url + "/api/v1/batches"
        self.client = client or httpx.AsyncClient(
            timeout=timeout_s, verify=tls if tls is not None else True,
            limits=httpx.Limits(keepalive_expiry=keep_alive_s),
        )
        self.ca_file = ca_file
        self.on_ack = on_ack
        self._reason_kind = ""
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.rng = rng
        self.probe_s = probe_s
        self.shipped = 0
        self.probes = 0  # probes sent while the collector did not answer
        self.stale_retries = 0  # requests sent again after a reused connection was closed
        self._wake = asyncio.Event()
        self._failures = 0
        self._unanswered = False  # the last failure: no answer (probe), not a refusal
        self._failing_since = 0.0  # monotonic time of the first failure of an outage

    def wake(self) -> None:
        """New batches were sealed: try now rather than at the end of the idle wait."""
        self._wake.set()

    def _delay(self) -> float:
        cap = min(self.backoff_max_s, self.backoff_initial_s * 2 ** min(self._failures, 30))
        return float(cap * self.rng())

    async def _post(self, seq: int, raw: bytes) -> bool:
        """Send one batch; return True when the buffer may move on to the next one."""
        try:
            resp = await self._send(
                "POST", self.endpoint, content=raw, headers={"content-type": CONTENT_TYPE}
            )
        except httpx.HTTPError as exc:
            tls = describe(self.url, exc, self.ca_file)
            if tls is not None:
                self._fail(tls, "tls")
                return False
            reason = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
            if self.url.startswith("https://") and isinstance(
                exc, httpx.ReadError | httpx.RemoteProtocolError
            ):
                # A TLS 1.3 server refusing a client without a certificate just hangs up.
                reason += MTLS_HINT
            self._fail(reason, unanswered=True)
            return False
        if resp.is_success:
            try:
                self.buffer.ack(seq)
            except sqlite3.Error as exc:  # disk full: sent again later, stored once
                self._fail(f"batch {seq} stored but not deleted from the buffer: {exc}")
                return False
            self.shipped += 1
            if self.on_ack is not None:
                self.on_ack(seq)
            if self._failures:
                log.info("collector reachable again", after_failures=self._failures,
                         down_s=round(time.monotonic() - self._failing_since, 1))
            self._failures = 0
            self._reason_kind = ""
            return True
        reason = resp.text[:200]
        if resp.status_code in PERMANENT:
            log.error("batch refused, set aside", seq=seq, status=resp.status_code, reason=reason)
            try:
                self.buffer.reject(seq, resp.status_code, reason)
            except sqlite3.Error as exc:
                self._fail(f"batch {seq} refused but not set aside in the buffer: {exc}")
                return False
            return True
        self._fail(f"HTTP {resp.status_code}: {reason}",
                   unanswered=resp.status_code in UNAVAILABLE)
        return False

    async def _send(self, method: str, url: str, **kw: Any) -> httpx.Response:
        """Send one request; once more at once if it went out on a reused connection that
        the server had closed (no response byte came: the batch store is idempotent)."""
        fresh = False

        async def trace(event: str, info: dict[str, Any]) -> None:
            nonlocal fresh
            if event.startswith("connection.connect_"):
                fresh = True

        try:
            return await self.client.request(method, url, extensions={"trace": trace}, **kw)
        except STALE as exc:
            if fresh:
                raise
            self.stale_retries += 1
            log.debug("kept-alive connection closed by the collector, sent again",
                      url=url, error=type(exc).__name__)
        return await self.client.request(method, url, **kw)

    async def _probe(self) -> bool:
        """Ask the collector whether it answers again (any answer but 502/503/504)."""
        self.probes += 1
        try:
            resp = await self._send("GET", self.url + PROBE_PATH)
        except httpx.HTTPError:
            return False
        return resp.status_code not in UNAVAILABLE

    def _fail(self, reason: str, kind: str = "other", unanswered: bool = False) -> None:
        """Log once per outage (and once more if it turns into a TLS failure or back);
        `unanswered`: no answer came, so probe for one rather than back off."""
        if self._failures == 0:
            self._failing_since = time.monotonic()
        self._unanswered = unanswered
        if self._failures == 0 or kind != self._reason_kind:
            if kind == "tls":
                log.error(f"{reason}; batches stay buffered", endpoint=self.endpoint)
            else:
                log.warning("cannot ship, buffering", endpoint=self.endpoint, reason=reason)
        self._reason_kind = kind
        self._failures += 1

    async def ship_pending(self) -> bool:
        """Send what is pending, oldest first; return False if the collector is unreachable."""
        while batch := self.buffer.pending(16):
            for seq, raw in batch:
                if not await self._post(seq, raw):
                    return False
        return True

    async def run(self, stop: asyncio.Event) -> None:
        """Ship until `stop` is set."""
        while not stop.is_set():
            self._wake.clear()
            if await self.ship_pending():
                await self._wait(stop, 30.0, wake=True)
            elif self._unanswered:
                await self._await_answer(stop)
            else:
                await self._wait(stop, self._delay())

    async def _await_answer(self, stop: asyncio.Event) -> None:
        """Probe every `probe_s` until the collector answers or `stop` is set."""
        # A random phase: agents that lost the collector together do not probe it together.
        delay = self.probe_s * self.rng()
        while not await self._wait(stop, delay):
            started = time.monotonic()
            if await self._probe():
                return
            # Counted from the probe's start: at most one probe per probe_s, even when a
            # collector that accepts but never answers makes each probe last timeout_s.
            delay = max(0.0, started + self.probe_s - time.monotonic())

    async def _wait(self, stop: asyncio.Event, timeout_s: float, wake: bool = False) -> bool:
        """Wait `timeout_s` or until `stop` (or with `wake`, new batches); True if stopped."""
        waiters = [asyncio.ensure_future(stop.wait())]
        if wake:
            waiters.append(asyncio.ensure_future(self._wake.wait()))
        _, not_done = await asyncio.wait(
            waiters, timeout=timeout_s, return_when=asyncio.FIRST_COMPLETED
        )
        for w in not_done:
            w.cancel()
        return stop.is_set()

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()
