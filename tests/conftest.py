"""Shared fixtures: a real collector on a real socket, agent keys, simulated meters."""

from __future__ import annotations

import asyncio
import random
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Request

from collectors.api import create_app
from collectors.auth import create_token
from collectors.evaluation.site import load_site
from collectors.ingest import Ingest
from collectors.store import Store

ROOT = Path(__file__).resolve().parent.parent

SITE_TOML = """
[site]
name = "test site"
region = "east-2023"

[energy]
total = ["meter-total"]
it = ["meter-it"]
it_point = "it_pdu"
"""


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port in a thread; yield its base URL."""
    port = free_port()
    server = uvicorn.Server(
        uvicorn.Config(app, host="127.0.0.1", port=port, log_config=None, access_log=False)
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "collector did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)


@dataclass
class Collector:
    """A running collector: its base URL, store, ingest counters and enrolled keys."""

    url: str
    store: Store
    ingest: Ingest
    keys: dict[str, Ed25519PrivateKey]
    # Upper bound of a random delay before each batch is handled, s: a slow network.
    batch_delay_s: list[float]
    # A bearer token per role ("engineer", "reader") for the windows API.
    tokens: dict[str, str]

    def http(self, role: str = "engineer") -> httpx.Client:
        """An httpx client sending the bearer token of `role` (close it, or use `with`)."""
        return httpx.Client(headers={"Authorization": f"Bearer {self.tokens[role]}"})


@pytest.fixture
def collector(tmp_path: Path) -> Iterator[Collector]:
    """A collector on 127.0.0.1 with SQLite in tmp_path and agent 'agent-1' enrolled."""
    site_file = tmp_path / "site.toml"
    site_file.write_text(SITE_TOML)
    store = Store(tmp_path / "collector.sqlite")
    key = Ed25519PrivateKey.generate()
    ingest = Ingest(store, {"agent-1": key.public_key()}, max_bytes=1 << 20)
    app = create_app(store, ingest, load_site(site_file))
    delay = [0.0]
    tokens = {role: create_token(store, role)[1] for role in ("engineer", "reader")}

    @app.middleware("http")
    async def slow_batches(request: Request, call_next: Any) -> Any:
        if delay[0] and request.url.path.endswith("/batches"):
            await asyncio.sleep(random.uniform(0, delay[0]))
        return await call_next(request)

    try:
        with serve(app) as url:
            yield Collector(url, store, ingest, {"agent-1": key}, delay, tokens)
    finally:
        store.close()


class MeterThread:
    """Simulated Modbus meters served from an event loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.meters: list[object] = []

    def add(self, profile: str, values: Callable[[], dict[str, float]]) -> int:
        """Serve one meter of `profile`; return its port."""
        from dcmeter.sim.meters import SimMeter

        meter = SimMeter(profile, values)
        self.meters.append(meter)
        return int(asyncio.run_coroutine_threadsafe(meter.start(), self.loop).result(10))

    def close(self) -> None:
        """Stop every meter and the loop."""
        for m in self.meters:
            asyncio.run_coroutine_threadsafe(m.stop(), self.loop).result(10)  # type: ignore[attr-defined]
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def meters() -> Iterator[MeterThread]:
    """A place to start simulated meters; all stopped at the end of the test."""
    m = MeterThread()
    try:
        yield m
    finally:
        m.close()
