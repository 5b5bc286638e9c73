"""The agent's life: poll on aligned ticks, buffer, seal, ship; reload on SIGHUP, drain on SIGTERM.

systemd learns the agent's state through sd_notify (dcmeter/base/sdnotify.py): READY=1 once the
sources are built, the buffer is open and the ticks are scheduled; WATCHDOG=1 from the event
loop; a STATUS= line after each tick; RELOADING=1 then READY=1 around a reload; STOPPING=1
when a stop begins. A stop writes everything held in memory to the buffer within DRAIN_S.
"""

from __future__ import annotations

import asyncio
import dataclasses
import signal
import sqlite3
import time
from collections.abc import Callable

import structlog
from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from dcmeter.agent import config, lean, pubkey
from dcmeter.agent.buffer import Buffer, Held
from dcmeter.agent.clock import OrderGuard, StepWatch, clock_status
from dcmeter.agent.config import AgentConfig
from dcmeter.agent.rotation import Signer
from dcmeter.agent.samples import now_ns
from dcmeter.agent.scheduler import Poller, next_aligned, start_ticks
from dcmeter.agent.shipper import Shipper, probe_interval
from dcmeter.agent.sources import Source, import_vendor_modules, vendor_types
from dcmeter.agent.startup import StartUp, prepare_sources
from dcmeter.agent.wire import ClockStatus
from dcmeter.base import sdnotify
from dcmeter.base.configfile import ConfigError

log = structlog.get_logger("dcmeter.agent")

BUFFER_FILE = "buffer.sqlite"
# SIGTERM to exit, s: what a stop may take (the unit's TimeoutStopSec=15 leaves a margin).
DRAIN_S = 10.0
# How long a stop waits for a poll in flight to finish and be committed, s. A poll still
# running then (only targets with timeout_s above this) is abandoned: nothing of it was read.
TICK_WAIT_S = 6.0
# Bound on closing the sources (BMC sessions, TCP links) at a stop or reload, s.
CLOSE_S = 2.0


def make_shipper(
    buffer: Buffer, cfg: AgentConfig, on_ack: Callable[[int], None] | None = None
) -> Shipper | None:
    """The shipper `cfg`'s [collector] table asks for; None when there is none. `on_ack(seq)`:
    called on each acknowledged batch (the signer deletes retired keys then)."""
    c = cfg.collector
    if c is None:
        return None
    return Shipper(buffer, c.url, c.timeout_s, c.backoff_initial_s, c.backoff_max_s,
                   tls=c.tls_context(), ca_file=c.ca_file, on_ack=on_ack,
                   probe_s=probe_interval(cfg.agent.interval_s), keep_alive_s=c.keep_alive_s)


def check_reloadable(old: AgentConfig, new: AgentConfig) -> None:
    """Refuse a reload that changes what only a restart can change (identity, state)."""
    for key in ("id", "state_dir"):
        before, after = getattr(old.agent, key), getattr(new.agent, key)
        if before != after:
            raise ConfigError(
                f"{new.path}: key agent.{key}: bad value {str(after)!r}: cannot change on "
                f"reload (running with {str(before)!r}): restart the agent to apply it"
            )


async def close_sources(sources: list[Source]) -> None:
    """Close `sources` within CLOSE_S, ignoring errors of dead targets."""
    try:
        await asyncio.wait_for(Poller(sources, [1.0] * len(sources)).close(), CLOSE_S)
    except TimeoutError:
        log.warning("sources not closed in time", timeout_s=CLOSE_S)


class Agent:
    """One agent: its sources, buffer and shipper, run until stopped."""

    def __init__(
        self,
        cfg: AgentConfig,
        clock: Callable[[], ClockStatus] = clock_status,
        notifier: sdnotify.Notifier | None = None,
    ) -> None:
        a = cfg.agent
        self.cfg = cfg
        self.buffer = Buffer(a.state_dir / BUFFER_FILE, a.id, int(a.buffer_max_mb * 2**20))
        self.held = Held()  # readings the buffer could not take yet (disk full)
        # Signs batches; switches to a rotated key once announced (agent/rotation.py).
        self.signer = Signer(a.state_dir, lambda: self.buffer.pending(2**31))
        self.sources = cfg.build_sources()
        self.poller = Poller(self.sources, [s.timeout_s for s in cfg.sources])
        self.shipper = make_shipper(self.buffer, cfg, self.signer.acknowledged)
        self.clock = clock
        # Wall-clock steps: flagged in the next batch; a series never goes back in time.
        self.steps = StepWatch()
        self.order = OrderGuard()
        self._watch: asyncio.Task[None] | None = None
        self.notifier = notifier or sdnotify.Notifier()
        self.stop_event = asyncio.Event()
        self.ticks = 0
        # Held by a tick, a reload and the final drain: they never overlap.
        self._lock = asyncio.Lock()
        self._tick_task: asyncio.Task[None] | None = None
        self._scheduler: AsyncIOScheduler | None = None
        self._shipping: asyncio.Task[None] | None = None
        self._tasks: set[asyncio.Task[bool]] = set()
        self.startup: StartUp | None = None  # what start_up() did

    async def start_up(self) -> StartUp:
        """Set every source up before the first tick (agent/startup.py): the first tick's
        timeouts then measure the targets, not a CPU busy opening 600 sessions."""
        self.notifier.notify(f"STATUS=setting up {len(self.sources)} sources")
        self.startup = await prepare_sources(self.sources, stop=self.stop_event)
        return self.startup

    def _sealer(self, body: bytes) -> bytes:
        return self.signer.envelope(body)

    def _clock(self, stepped_s: float | None) -> ClockStatus:
        """The clock status to seal with; a step widens the error bound to its size."""
        c = self.clock()
        if stepped_s is None:
            return c
        bound = max(c.max_error_s or 0.0, abs(stepped_s))
        return dataclasses.replace(c, max_error_s=bound, stepped_s=stepped_s)

    def seal(self, stepped_s: float | None = None) -> None:
        """Seal everything buffered into batches; the first carries `stepped_s`, if any."""
        while seq := self.buffer.seal(
            self._sealer, self._clock(stepped_s), now_ns(), self.cfg.agent.batch_max_samples,
            self.signer.next_key(),
        ):
            self.signer.sealed(seq)
            stepped_s = None
        if stepped_s is not None:  # nothing sealed (all held back): the next batch says it
            self.steps.restore(stepped_s)

    def status(self) -> str:
        """One line for `systemctl status`: sources, failures, what waits in the buffer."""
        failing = sum(1 for n in self.poller.failures.values() if n) if self.ticks else 0
        c = self.buffer.counts()
        return (
            f"polling {len(self.sources)} sources every {self.cfg.agent.interval_s:g} s"
            f" ({failing} failed at least once), {c['batches']} batches and"
            f" {c['samples']} samples buffered"
        )

    async def tick(self) -> None:
        """One poll: read all sources, commit the readings, seal them, wake the shipper."""
        async with self._lock:
            if self.stop_event.is_set():
                return
            self._tick_task = asyncio.current_task()
            try:
                readings = await self.poller.poll()
                self._note_failures()
                self._stepped(self.steps.check())
                # Disk full: held in memory, written once the buffer takes them again.
                self.held.commit(self.buffer, self.order.keep(readings),
                                 lambda: self.seal(self.steps.take()))
                self.ticks += 1
            finally:
                self._tick_task = None
            if self.ticks == 1:  # the first tick's sessions, walks and caches are made
                log.debug("memory released after the first tick", **lean.release())
            self.notifier.notify("STATUS=" + self.status())
        if self.shipper:
            self.shipper.wake()

    def _note_failures(self) -> None:
        """Keep the tick's failed reads for its batch; a buffer that cannot be written loses
        them (the poller has logged each failure's start with its reason)."""
        try:
            self.buffer.note_failures(self.poller.tick_failures)
        except sqlite3.Error as exc:
            log.debug("failures not buffered", error=str(exc))

    def _stepped(self, step: float | None) -> None:
        """Log a wall-clock step and put the ticks back on the stepped clock's multiples."""
        if step is None:
            return
        log.warning("wall clock stepped", stepped_s=round(step, 3),
                    held_back=self.order.held)
        if self._scheduler:
            interval = self.cfg.agent.interval_s
            self._scheduler.reschedule_job("poll", trigger=IntervalTrigger(
                seconds=interval, start_date=next_aligned(time.time(), interval)))

    async def _watch_clock(self) -> None:
        """Check for steps between ticks: after a backward step the scheduler, which waits
        on wall-clock times, would otherwise not tick again until the clock caught up."""
        while True:
            await asyncio.sleep(min(self.cfg.agent.interval_s, 5.0))
            self._stepped(self.steps.check())

    def _start_shipping(self) -> None:
        if self.shipper:
            self._shipping = asyncio.create_task(self.shipper.run(self.stop_event))

    async def _stop_shipping(self) -> None:
        if self._shipping:
            self._shipping.cancel()
            await asyncio.gather(self._shipping, return_exceptions=True)
            self._shipping = None
        if self.shipper:
            await self.shipper.close()

    def request_reload(self) -> None:
        """SIGHUP: reload the config file in a task (reloads run one after the other)."""
        task = asyncio.create_task(self.reload())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def reload(self) -> bool:
        """Apply the config file again; keep the running config if the new one is bad.

        Sources whose settings did not change keep their connections; removed ones are
        closed; a new interval reschedules the ticks; a new [collector] table a new shipper.
        Every committed sample stays in the buffer, and a poll in flight finishes first.
        """
        self.notifier.notify("RELOADING=1", "STATUS=reloading " + str(self.cfg.path))
        try:
            new = config.load(self.cfg.path)
            check_reloadable(self.cfg, new)
            async with self._lock:
                if self.stop_event.is_set():
                    return False
                await self._apply(new)
        except ConfigError as exc:
            log.error("configuration not reloaded, keeping the running one", error=str(exc))
            self.notifier.notify("READY=1", "STATUS=reload refused; " + self.status())
            return False
        log.info("configuration reloaded", path=str(new.path), sources=len(self.sources),
                 interval_s=new.agent.interval_s)
        self.notifier.notify("READY=1", "STATUS=" + self.status())
        return True

    async def _apply(self, new: AgentConfig) -> None:
        """Swap in `new`'s sources, interval, buffer bound and collector (lock held)."""
        old = {c.id: (c, s) for c, s in zip(self.cfg.sources, self.sources, strict=True)}
        try:
            import_vendor_modules(vendor_types(new.sources))
            sources = [
                old[c.id][1] if c.id in old and old[c.id][0] == c else c.build()
                for c in new.sources
            ]
        except ConfigError:
            raise
        except Exception as exc:  # a source that cannot be built must not stop the agent
            raise ConfigError(f"{new.path}: {type(exc).__name__}: {exc}") from None
        kept = {id(s) for s in sources}
        await close_sources([s for _, s in old.values() if id(s) not in kept])
        failures = self.poller.failures
        self.sources = sources
        self.poller = Poller(sources, [c.timeout_s for c in new.sources])
        for sid in self.poller.failures:
            self.poller.failures[sid] = failures.get(sid, 0)
        self.buffer.max_bytes = int(new.agent.buffer_max_mb * 2**20)
        if new.agent.interval_s != self.cfg.agent.interval_s and self._scheduler:
            start = next_aligned(time.time(), new.agent.interval_s)
            self._scheduler.reschedule_job(
                "poll", trigger=IntervalTrigger(seconds=new.agent.interval_s, start_date=start)
            )
        if new.collector != self.cfg.collector:
            await self._stop_shipping()
            self.shipper = make_shipper(self.buffer, new, self.signer.acknowledged)
            self._start_shipping()
        elif self.shipper:
            self.shipper.probe_s = probe_interval(new.agent.interval_s)
        self.cfg = new

    async def run(self) -> None:
        """Run until `stop_event` is set (SIGTERM and SIGINT set it; SIGHUP reloads)."""
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self.stop_event.set)
        loop.add_signal_handler(signal.SIGHUP, self.request_reload)
        self.held.commit(self.buffer, [], self.seal)  # what a previous run did not seal
        await self.start_up()
        log.debug("memory released after start-up", **lean.release())
        self._scheduler = start_ticks(self.tick, self.cfg.agent.interval_s, time.time())
        self.steps.check()
        self._watch = asyncio.create_task(self._watch_clock())
        self._start_shipping()
        interval = sdnotify.watchdog_interval()
        watchdog = (
            asyncio.create_task(sdnotify.watchdog(self.notifier, interval)) if interval else None
        )
        log.info(
            "agent started",
            agent=self.cfg.agent.id,
            sources=len(self.sources),
            interval_s=self.cfg.agent.interval_s,
            key=pubkey.fingerprint(self.signer.key.public_key()),
            watchdog_s=interval,
            **self.buffer.counts(),
        )
        self.notifier.notify("READY=1", "STATUS=" + self.status())
        try:
            await self.stop_event.wait()
        finally:
            self.notifier.notify("STOPPING=1", "STATUS=stopping: writing readings to the buffer")
            if watchdog:
                watchdog.cancel()
            if self._watch:
                self._watch.cancel()
            await self._drain()

    async def _drain(self) -> None:
        """Stop polling, commit and seal what is in memory, close everything: within DRAIN_S."""
        started = time.monotonic()
        if self._scheduler:
            self._scheduler.pause()  # no new tick; shutting down would cancel the one running
        try:
            await asyncio.wait_for(self._lock.acquire(), TICK_WAIT_S)
        except TimeoutError:
            if self._tick_task:
                self._tick_task.cancel()
            log.warning("poll in flight abandoned at stop", waited_s=TICK_WAIT_S)
            await self._lock.acquire()  # the cancelled tick lets go at once
        # The lock stays held: nothing polls or reloads after this point.
        if self._scheduler:
            self._scheduler.shutdown(wait=False)
        await self._stop_shipping()
        if not self.held.commit(self.buffer, [], self.seal) and self.held.readings:
            log.error("readings held in memory lost at stop: the buffer cannot be written",
                      readings=self.held.readings, reason=self.held.failing)
        await close_sources(self.sources)
        log.info("agent stopped", ticks=self.ticks, stop_s=round(time.monotonic() - started, 3),
                 **self.buffer.counts())
        self.buffer.close()
        self.notifier.close()
