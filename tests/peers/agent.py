"""An in-process agent (dcmeter.agent.daemon.Agent) of a test collector: its key, a config
naming the collector and `sources`, ticks driven by the test, and shipping on demand."""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import serialization

from dcmeter.agent import config as agent_config
from dcmeter.agent.daemon import Agent, close_sources, make_shipper
from dcmeter.sim.serve import sources_toml


def agent_of(tmp: Path, url: str, key: Any, sources: Sequence[dict[str, Any]],
             agent_id: str = "agent-1") -> Agent:
    """An agent `agent_id` with the Ed25519 private `key` the collector at `url` enrolled,
    reading `sources` (agent config tables), its state under `tmp/state`."""
    state = tmp / "state"
    state.mkdir()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    (state / "agent.key").write_bytes(pem)
    os.chmod(state / "agent.key", 0o600)
    cfg = tmp / "agent.toml"
    cfg.write_text(
        f'[agent]\nid = "{agent_id}"\nstate_dir = "{state}"\n'
        f'[collector]\nurl = "{url}"\nbackoff_initial_s = 0.05\nbackoff_max_s = 0.1\n\n'
        + sources_toml(list(sources))
    )
    return Agent(agent_config.load(cfg))


async def tick_and_ship(agent: Agent, ticks: int, gap_s: float = 0.0) -> bool:
    """`ticks` ticks `gap_s` apart, then ship what is pending with a fresh shipper (an httpx
    client lives on one event loop); True when everything was acknowledged."""
    for i in range(ticks):
        if i and gap_s:
            await asyncio.sleep(gap_s)
        await agent.tick()
    shipper = make_shipper(agent.buffer, agent.cfg)
    assert shipper is not None
    try:
        return await shipper.ship_pending()
    finally:
        await shipper.close()


@contextlib.contextmanager
def polling(agent: Agent, gap_s: float = 0.2) -> Iterator[None]:
    """Let `agent` tick and ship every `gap_s` s in a thread of its own, on one event loop
    (a source such as pysnmp's keeps state bound to its loop), while the block runs and a
    command under test works; stop, join and close its buffer after."""
    stop = threading.Event()

    async def ticking() -> None:
        while not stop.is_set():
            await tick_and_ship(agent, 1)
            await asyncio.sleep(gap_s)
        await close_sources(agent.sources)

    thread = threading.Thread(target=asyncio.run, args=(ticking(),), daemon=True)
    thread.start()
    try:
        yield
    finally:
        stop.set()
        thread.join(30)
        agent.buffer.close()
