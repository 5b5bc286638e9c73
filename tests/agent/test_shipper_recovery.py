"""Shipping after an outage and across keep-alive closes, against a real collector on a socket.

(a) The agent's Shipper, with its jitter pinned, waits for a collector that is down longer
than the old backoff ladder would have reached; brought back, the buffered batches land
within one probe interval. The old ladder (1, 2, 4, … s) would next have tried 28 s after the
return. (b) A real `dcmeter agent run` process at a 1 s interval ships through a proxy that
closes every kept-alive connection, unanswered, as its second request arrives (what a
collector's keep-alive timeout does when it fires as the agent reuses the connection; uvicorn
does it only now and then, too rarely to test) to a collector with a 1 s keep-alive: none of
the closes may show as a failure or delay a batch.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Callable
from pathlib import Path

import httpx
from conftest import MeterThread, free_port
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from test_fault_collector_down import (
    AGENT,
    Served,
    SiteCollector,
    running_agent,
    wait_for,
    write_agent_config,
)

from dcmeter.agent import wire
from dcmeter.agent.buffer import Buffer
from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo
from dcmeter.agent.shipper import Shipper
from dcmeter.agent.wire import ClockStatus

KEY = Ed25519PrivateKey.generate()
SRC = SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"})
POWER = MetricSpec("power_w", "W")
DOWN_S = 35.0  # past the old ladder's 1+2+4+8+16 = 31 s: its next try would come at 63 s
BATCHES = 3
PROBE_S = 5.0  # the Shipper's default probe interval (the daemon passes min(interval, 5 s))


def seal_batches(path: Path, n: int) -> None:
    """Write `n` sealed batches of three power samples each into the buffer at `path`."""
    buf = Buffer(path, AGENT)
    t = int(time.time()) - 60
    for b in range(n):
        buf.append([(SRC, Reading(POWER, 1000.0 + i, (t + b) * 10**9 + i)) for i in range(3)])
        buf.seal(lambda body: wire.envelope(body, KEY), ClockStatus(True, 0.0), time.time_ns())
    buf.close()


class ShipperThread:
    """The agent's Shipper on its own event loop and buffer connection, as in the daemon."""

    def __init__(self, path: Path, url: str) -> None:
        self.path = path
        self.url = url
        self.shipper: Shipper | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.stop_event: asyncio.Event | None = None
        self.thread = threading.Thread(target=lambda: asyncio.run(self._main()), daemon=True)
        self.thread.start()
        wait_for(lambda: self.shipper is not None, 10, "the shipper to start")

    async def _main(self) -> None:
        buf = Buffer(self.path, AGENT)
        # Jitter pinned near its top: the old full-jitter ladder becomes 1, 2, 4, 8, … s.
        shipper = Shipper(buf, self.url, timeout_s=5.0, rng=lambda: 0.999)
        self.loop, self.stop_event = asyncio.get_running_loop(), asyncio.Event()
        self.shipper = shipper
        try:
            await shipper.run(self.stop_event)
        finally:
            await shipper.close()
            buf.close()

    def stop(self) -> None:
        """Stop shipping and wait for the thread."""
        assert self.loop and self.stop_event
        self.loop.call_soon_threadsafe(self.stop_event.set)
        self.thread.join(15)
        assert not self.thread.is_alive(), "shipper did not stop"


def test_shipping_resumes_within_a_probe_interval_of_the_return(
    tmp_path: Path, store_location: Callable[[str], Path | str]
) -> None:
    path = tmp_path / "buffer.sqlite"
    seal_batches(path, BATCHES)
    col = SiteCollector(store_location("collector"), tmp_path, KEY)  # not started: down
    ship = ShipperThread(path, col.url)
    try:
        assert ship.shipper
        shipper = ship.shipper
        wait_for(lambda: shipper._failures >= 1, 10, "the first failed post")
        t_down = time.monotonic()
        wait_for(lambda: time.monotonic() > t_down + DOWN_S, DOWN_S + 5, "the outage to pass")
        failures, probes_down = shipper._failures, getattr(shipper, "probes", 0)
        col.start()
        t_up = time.monotonic()
        # Within one probe interval (5 s) of the return, with slack for a loaded machine;
        # the old ladder would have tried next at about t_down + 63 s, 28 s after t_up.
        wait_for(lambda: col.store is not None and len(col.store.batches(AGENT)) == BATCHES,
                 15, "the buffered batches to land after the collector's return")
        resumed_s = time.monotonic() - t_up
        assert col.store
        assert [b["seq"] for b in col.store.batches(AGENT)] == list(range(1, BATCHES + 1))
        assert failures == 1, "a probe was counted (and logged) as a failed post"
        # Not hammering a collector that is down: at most one probe per probe interval.
        assert 1 <= probes_down <= DOWN_S / PROBE_S + 2, probes_down
        print(f"down {DOWN_S:g} s, {probes_down} probes; shipped {resumed_s:.1f} s after the"
              " return")
    finally:
        ship.stop()
        if col.store:
            col.stop()


class ClosingProxy:
    """An HTTP/1.1 proxy on loopback that answers the first request of each connection (from
    `upstream`) and closes the connection, unanswered, when a second one arrives on it."""

    def __init__(self, upstream: str) -> None:
        self.upstream = upstream
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.closed = 0  # requests left unanswered
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(10)

    async def _start(self) -> None:
        self.client = httpx.AsyncClient(limits=httpx.Limits(max_keepalive_connections=0))
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        served = False
        try:
            while True:
                head = await reader.readuntil(b"\r\n\r\n")
                lines = head.decode("latin-1").split("\r\n")
                method, target = lines[0].split(" ")[:2]
                headers = dict(line.split(": ", 1) for line in lines[1:] if ": " in line)
                headers = {k.lower(): v for k, v in headers.items()}
                body = await reader.readexactly(int(headers.get("content-length", "0")))
                if served:
                    self.closed += 1
                    return
                served = True
                resp = await self.client.request(
                    method, self.upstream + target, content=body,
                    headers={"content-type": headers.get("content-type", "")},
                )
                writer.write(
                    f"HTTP/1.1 {resp.status_code} {resp.reason_phrase}\r\n"
                    f"content-type: {resp.headers.get('content-type', '')}\r\n"
                    f"content-length: {len(resp.content)}\r\n\r\n".encode() + resp.content
                )
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            pass
        finally:
            writer.close()

    def close(self) -> None:
        """Stop serving and the loop."""
        async def stop() -> None:
            self.server.close()
            await self.client.aclose()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def test_reused_connections_closed_by_the_server_are_sent_again_not_logged(
    tmp_path: Path, meters: MeterThread, store_location: Callable[[str], Path | str]
) -> None:
    key = Ed25519PrivateKey.generate()
    served = Served(meters)
    col = SiteCollector(store_location("collector"), tmp_path, key, keep_alive_s=1)
    col.start()
    proxy = ClosingProxy(col.url)
    cfg = write_agent_config(tmp_path, proxy.url, key, served.ports)
    seen: dict[int, float] = {}  # seq -> when the collector first held it (wall clock, s)
    sealed: dict[int, float] = {}

    def shipped_for(seconds: float, t0: float) -> bool:
        assert col.store
        for b in col.store.batches(AGENT):
            seen.setdefault(b["seq"], time.time())
            sealed[b["seq"]] = b["sealed_ns"] / 1e9
        return bool(sealed) and max(sealed.values()) >= t0 + seconds

    try:
        with running_agent(cfg) as agent:
            t0 = time.time()
            wait_for(lambda: shipped_for(30, t0), 120, "30 s of batches")
            lines = "".join(agent.lines)[-3000:]
            assert agent.events("cannot ship") == [], lines
            assert agent.events("reachable again") == [], lines
        late = {s: round(seen[s] - sealed[s], 2) for s in seen if seen[s] - sealed[s] > 5}
        assert not late, f"batches that landed over 5 s after sealing: {late}"
        assert len(seen) >= 25
        assert proxy.closed >= 10, "the proxy closed too few reused connections to tell"
    finally:
        proxy.close()
        if col.store:
            col.stop()
