"""Ship sealed batches to the collector: oldest first, deleted only on acknowledgement."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import httpx
import structlog

from agent.buffer import Buffer

log = structlog.get_logger("dcmeter.agent.ship")

CONTENT_TYPE = "application/x-msgpack"
# Refused for good: retrying the same bytes can never succeed. Set aside, never deleted.
PERMANENT = {400, 409, 413}


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
    ) -> None:
        self.buffer = buffer
        self.endpoint = url.rstrip("/") + "/api/v1/batches"
        self.client = client or httpx.AsyncClient(timeout=timeout_s)
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
            self._fail(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__)
            return False
        if resp.is_success:
            self.buffer.ack(seq)
            self.shipped += 1
            if self._failures:
                log.info("collector reachable again", after_failures=self._failures)
            self._failures = 0
            return True
        reason = resp.text[:200]
        if resp.status_code in PERMANENT:
            log.error("batch refused, set aside", seq=seq, status=resp.status_code, reason=reason)
            self.buffer.reject(seq, resp.status_code, reason)
            return True
        self._fail(f"HTTP {resp.status_code}: {reason}")
        return False

    def _fail(self, reason: str) -> None:
        if self._failures == 0:
            log.warning("cannot ship, buffering", endpoint=self.endpoint, reason=reason)
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
