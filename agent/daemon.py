"""The agent's life: poll on aligned ticks, buffer, seal, ship; stop cleanly on SIGTERM."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import Callable

import structlog

from agent import keys, wire
from agent.buffer import Buffer
from agent.clock import clock_status
from agent.config import AgentConfig
from agent.samples import now_ns
from agent.scheduler import Poller, start_ticks
from agent.shipper import Shipper
from agent.wire import ClockStatus

log = structlog.get_logger("dcmeter.agent")

BUFFER_FILE = "buffer.sqlite"


class Agent:
    """One agent: its sources, buffer and shipper, run until stopped."""

    def __init__(
        self, cfg: AgentConfig, clock: Callable[[], ClockStatus] = clock_status
    ) -> None:
        a = cfg.agent
        self.cfg = cfg
        self.key = keys.load_or_create(a.state_dir)
        self.buffer = Buffer(a.state_dir / BUFFER_FILE, a.id, int(a.buffer_max_mb * 2**20))
        self.sources = cfg.build_sources()
        self.poller = Poller(self.sources, [s.timeout_s for s in cfg.sources])
        c = cfg.collector
        self.shipper = (
            Shipper(self.buffer, c.url, c.timeout_s, c.backoff_initial_s, c.backoff_max_s)
            if c
            else None
        )
        self.clock = clock
        self.stop_event = asyncio.Event()
        self.ticks = 0

    def _sealer(self, body: bytes) -> bytes:
        return wire.envelope(body, self.key)

    def seal(self) -> None:
        """Seal everything buffered into batches."""
        while self.buffer.seal(
            self._sealer, self.clock(), now_ns(), self.cfg.agent.batch_max_samples
        ):
            pass

    async def tick(self) -> None:
        """One poll: read all sources, commit the readings, seal them, wake the shipper."""
        readings = await self.poller.poll()
        self.buffer.append(readings)
        self.seal()
        self.ticks += 1
        if self.shipper:
            self.shipper.wake()

    async def run(self) -> None:
        """Run until `stop_event` is set (SIGTERM and SIGINT set it)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        self.seal()  # whatever a previous run committed but did not seal
        scheduler = start_ticks(self.tick, self.cfg.agent.interval_s, time.time())
        shipping = (
            asyncio.create_task(self.shipper.run(self.stop_event)) if self.shipper else None
        )
        log.info(
            "agent started",
            agent=self.cfg.agent.id,
            sources=len(self.sources),
            interval_s=self.cfg.agent.interval_s,
            key=keys.fingerprint(self.key.public_key()),
            **self.buffer.counts(),
        )
        try:
            await self.stop_event.wait()
        finally:
            scheduler.shutdown(wait=False)
            if shipping:
                shipping.cancel()
                await asyncio.gather(shipping, return_exceptions=True)
                assert self.shipper is not None
                await self.shipper.close()
            self.seal()
            await self.poller.close()
            log.info("agent stopped", ticks=self.ticks, **self.buffer.counts())
            self.buffer.close()
