"""Ship sealed batches to the collector: oldest first, deleted only on acknowledgement."""

from __future__ import annotations

import asyncio
import random
import sqlite3
import ssl
from collections.abc import Callable
from pathlib import Path

import httpx
import structlog

from agent.buffer import Buffer
from dcmeter.tls import describe

log = structlog.get_logger("dcmeter.agent.ship")

CONTENT_TYPE = "application/x-msgpack"
# Refused for good: retrying the same bytes can never succeed. Set aside, never deleted.
PERMANENT = {400, 409, 413}
MTLS_HINT = (
    " (the collector closed the connection: if it requires client certificates, set"
    " [collector] client_cert_file and client_key_file)"
)


class Shipper:
    """Posts pending batches; backs off exponentially with full jitter while it cannot."""

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
    ) -> None:
        """`tls` verifies the collector (default: the system CA store); `ca_file` is named
        in the message logged when its certificate does not verify; `on_ack(seq)` is called
        after the collector acknowledged batch `seq` (2xx)."""
        self.buffer = buffer
        self.url = url.rstrip("/")
        self.endpoint = self.url + "/api/v1/batches"
        self.client = client or httpx.AsyncClient(
            timeout=timeout_s, verify=tls if tls is not None else True
        )
        self.ca_file = ca_file
        self.on_ack = on_ack
        self._reason_kind = ""
        self.backoff_initial_s = backoff_initial_s
        self.backoff_max_s = backoff_max_s
        self.rng = rng
        self.shipped = 0
        self._wake = asyncio.Event()
        self._failures = 0

    def wake(self) -> None:
        """New batches were sealed: try now rather than at the end of the idle wait."""
        self._wake.set()

    def _delay(self) -> float:
        cap = min(self.backoff_max_s, self.backoff_initial_s * 2 ** min(self._failures, 30))
        return float(cap * self.rng())

    async def _post(self, seq: int, raw: bytes) -> bool:
        """Send one batch; return True when the buffer may move on to the next one."""
        try:
            resp = await self.client.post(
                self.endpoint, content=raw, headers={"content-type": CONTENT_TYPE}
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
            self._fail(reason)
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
                log.info("collector reachable again", after_failures=self._failures)
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
        self._fail(f"HTTP {resp.status_code}: {reason}")
        return False

    def _fail(self, reason: str, kind: str = "other") -> None:
        """Log once per outage (and once more if it turns into a TLS failure or back)."""
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
            ok = await self.ship_pending()
            wait = self._delay() if not ok else 30.0
            waiters = [asyncio.ensure_future(stop.wait())]
            if ok:
                waiters.append(asyncio.ensure_future(self._wake.wait()))
            _, not_done = await asyncio.wait(
                waiters, timeout=wait, return_when=asyncio.FIRST_COMPLETED
            )
            for w in not_done:
                w.cancel()

    async def close(self) -> None:
        """Close the HTTP client."""
        await self.client.aclose()
