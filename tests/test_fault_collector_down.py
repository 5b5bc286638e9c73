"""Fault: the collector is down for a long stretch (time-compressed to 1 s ticks).

A real `dcmeter agent run` process polls two simulated Modbus meters every second and ships
to a real collector on loopback; the collector is stopped for 20 ticks and started again on
the same store and port. Every value the meters served must be stored exactly once, the hash
chain unbroken, and the window over the outage must show no gap.

The helpers here (a collector that can be stopped and restarted, the agent process, what
the meters served) are shared with tests/test_fault_buffer.py.
"""

from __future__ import annotations

import json
import math
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import uvicorn
from conftest import ROOT, SITE_TOML, MeterThread, free_port
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import wire
from dcmeter.agent.buffer import envelope_body
from dcmeter.collectors.evaluation.site import load_site
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.api import create_app
from dcmeter.collectors.web.auth import create_token

AGENT = "agent-1"
DOWN_TICKS = 20
Key = tuple[str, str, int]  # (source, metric, ts_ns)
SOURCES = {"meter-total": "eastron_sdm630", "meter-it": "schneider_pm5100"}


def wait_for(check: Callable[[], bool], timeout_s: float, what: str) -> None:
    """Poll `check` every 0.1 s until it holds; fail naming `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out after {timeout_s:g} s waiting for {what}"
        time.sleep(0.1)


class SiteCollector:
    """A collector on a fixed loopback port that can be stopped and started again on the
    same store, as a restarted collector service would be; `keep_alive_s`: how long it keeps
    an idle connection open (uvicorn's timeout_keep_alive), s."""

    def __init__(
        self, location: Path | str, tmp: Path, key: Ed25519PrivateKey, keep_alive_s: int = 5
    ) -> None:
        self.location = location
        self.keep_alive_s = keep_alive_s
        self.site_file = tmp / "site.toml"
        self.site_file.write_text(SITE_TOML)
        self.public = key.public_key()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.store: Store | None = None
        self.token = ""
        self._server: uvicorn.Server | None = None
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Open the store and serve on the port."""
        self.store = Store(self.location)
        if not self.token:
            self.token = create_token(self.store, "engineer")[1]
        ingest = Ingest(self.store, {AGENT: self.public}, max_bytes=1 << 20)
        app = create_app(self.store, ingest, load_site(self.site_file))
        self._server = uvicorn.Server(uvicorn.Config(
            app, host="127.0.0.1", port=self.port, log_config=None, access_log=False,
            timeout_keep_alive=self.keep_alive_s))
        self._thread = threading.Thread(target=self._server.run, daemon=True)
        self._thread.start()
        server = self._server
        wait_for(lambda: server.started, 10, "the collector to start")

    def stop(self) -> None:
        """Stop serving (connections refused from now on) and close the store."""
        assert self._server and self._thread and self.store
        self._server.should_exit = True
        self._thread.join(10)
        assert not self._thread.is_alive(), "collector did not stop"
        self.store.close()
        self._server = self._thread = self.store = None

    def samples(self) -> list[tuple[str, str, int, float]]:
        """Every stored sample (source, metric, ts_ns, value)."""
        assert self.store
        return list(self.store.samples())

    def http(self) -> httpx.Client:
        """An API client with the engineer's token."""
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"})

    def window(self, start_ns: int, end_ns: int) -> dict[str, Any]:
        """Open an infrastructure window over [start, end], close it, return its result."""
        def iso(ns: int) -> str:
            return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ns // 10**9)) + "Z"

        with self.http() as c:
            r = c.post("/api/v1/windows", json={"kind": "infrastructure", "start": iso(start_ns)})
            assert r.status_code == 201, r.text
            wid = r.json()["id"]
            r = c.post(f"/api/v1/windows/{wid}/stop", json={"end": iso(end_ns)})
            assert r.status_code == 200, r.text
            r = c.get(f"/api/v1/windows/{wid}")
            assert r.status_code == 200, r.text
            result: dict[str, Any] = r.json()
            return result


class Served:
    """Simulated meters that note the time of every request they answer."""

    def __init__(self, meters: MeterThread) -> None:
        self.calls: dict[str, list[float]] = {s: [] for s in SOURCES}
        self.ports = [meters.add(profile, self._values(s)) for s, profile in SOURCES.items()]

    def _values(self, source: str) -> Callable[[], dict[str, float]]:
        def values() -> dict[str, float]:
            t = time.time()
            self.calls[source].append(t)
            return {"power_w": 1000.0 + t % 7, "energy_import_kwh": t / 3600,
                    "energy_export_kwh": 0.0, "frequency_hz": 50.0}
        return values

    def polled_seconds(self, source: str, t0: float, t1: float) -> set[int]:
        """The whole seconds of the ticks in which the agent read `source` within [t0, t1]
        (ticks fall on whole seconds; a poll's requests follow within milliseconds)."""
        return {math.floor(t) for t in self.calls[source] if t0 <= t <= t1}


def stored_seconds(
    samples: list[tuple[str, str, int, float]], source: str, metric: str, t0: float, t1: float
) -> list[int]:
    """The whole seconds of the stored samples of (source, metric) within [t0, t1]."""
    return sorted(
        math.floor(ts / 1e9) for s, m, ts, _ in samples
        if s == source and m == metric and t0 <= ts / 1e9 <= t1
    )


def write_agent_config(
    tmp: Path, url: str, key: Ed25519PrivateKey, ports: list[int], extra: str = ""
) -> Path:
    """An agent config polling both meters every second; `extra` goes into [agent]."""
    state = tmp / "state"
    state.mkdir(exist_ok=True)
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    (state / "agent.key").write_bytes(pem)
    os.chmod(state / "agent.key", 0o600)
    cfg = tmp / "agent.toml"
    blocks = "".join(
        f'[[sources]]\nid = "{s}"\ntype = "modbus"\nhost = "127.0.0.1"\nport = {port}\n'
        f'profile = "{profile}"\ntimeout_s = 0.5\n'
        for (s, profile), port in zip(SOURCES.items(), ports, strict=True)
    )
    cfg.write_text(
        f'[agent]\nid = "{AGENT}"\ninterval_s = 1\nstate_dir = "{state}"\n{extra}\n'
        f'[collector]\nurl = "{url}"\nbackoff_initial_s = 0.05\nbackoff_max_s = 0.5\n'
        f"{blocks}"
    )
    return cfg


class AgentProcess:
    """`dcmeter agent run` as a child process; its JSON log lines (stdout, stderr joined)
    collected by a thread, so a full pipe never blocks it."""

    def __init__(self, cfg: Path) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "dcmeter", "agent", "run", "-c", str(cfg)],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        )
        self.lines: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stdout
        for line in self.proc.stdout:
            self.lines.append(line)

    @property
    def pid(self) -> int:
        """The agent's process id."""
        return self.proc.pid

    def events(self, text: str) -> list[dict[str, Any]]:
        """The log events whose message contains `text`."""
        out = []
        for line in list(self.lines):
            try:
                e = json.loads(line)
            except ValueError:
                continue
            if text in str(e.get("event", "")):
                out.append(e)
        return out

    def alive(self) -> bool:
        """Whether the agent is still running."""
        return self.proc.poll() is None

    def stop(self) -> int:
        """SIGTERM; return the exit status (the agent drains within 10 s)."""
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = self.proc.wait(timeout=5)
        self._reader.join(5)
        return rc


@contextmanager
def running_agent(cfg: Path) -> Iterator[AgentProcess]:
    """An agent process, stopped (and its exit status checked) at the end."""
    agent = AgentProcess(cfg)
    try:
        yield agent
    finally:
        rc = agent.stop()
    assert rc == 0, "".join(agent.lines)[-3000:]


def committed(buffer: Path) -> dict[Key, float]:
    """Every sample an agent's buffer holds now, unsealed or sealed, with its value."""
    db = sqlite3.connect(f"file:{buffer}?mode=ro", uri=True, timeout=5)
    try:
        src = {i: json.loads(k)[0] for i, k in db.execute("SELECT idx, key FROM sources")}
        met = {i: json.loads(k)[0] for i, k in db.execute("SELECT idx, key FROM metrics")}
        out = {(src[s], met[m], t): v
               for t, s, m, v in db.execute("SELECT ts, src, met, value FROM samples")}
        for (raw,) in db.execute("SELECT raw FROM batches"):
            b = wire.decode_body(envelope_body(raw))
            out |= {
                (b.sources[s].id, b.metrics[m].spec.name, t): v
                for t, s, m, v in zip(b.ts, b.src, b.met, b.val, strict=True)
            }
        return out
    finally:
        db.close()


def test_collector_down_then_every_sample_arrives_once(
    tmp_path: Path, meters: MeterThread, store_location: Callable[[str], Path | str]
) -> None:
    key = Ed25519PrivateKey.generate()
    served = Served(meters)
    col = SiteCollector(store_location("collector"), tmp_path, key)
    col.start()
    cfg = write_agent_config(tmp_path, col.url, key, served.ports)
    buffer = tmp_path / "state" / "buffer.sqlite"
    try:
        with running_agent(cfg) as agent:
            t_begin = time.time()
            wait_for(lambda: len(col.samples()) >= 3 * 8, 20, "the first batches to arrive")
            col.stop()
            t_down = time.time()
            # While the collector is down, everything polled waits in the buffer.
            held: dict[Key, float] = {}
            while time.time() < t_down + DOWN_TICKS:
                held |= committed(buffer)
                time.sleep(0.5)
            held |= committed(buffer)
            assert agent.alive()
            col.start()
            t_up = time.time()
            wait_for(lambda: held.keys() <= {k[:3] for k in col.samples()}, 20,
                     "the buffered samples to arrive")
            wait_for(lambda: time.time() > t_up + 3, 5, "a few ticks after the return")
            samples = col.samples()
            assert agent.events("cannot ship"), "".join(agent.lines)[-3000:]
            assert len(agent.events("cannot ship")) == 1, "the outage was logged more than once"
        t_end = time.time()

        # Exactly once, with the value the agent read.
        counts = Counter((s, m, t) for s, m, t, _ in samples)
        assert not [k for k, n in counts.items() if n > 1], "samples stored twice"
        values = {(s, m, t): v for s, m, t, v in samples}
        outage = [k for k in held if t_down * 1e9 < k[2] < t_up * 1e9]
        # At least power and energy of each meter in every tick of the outage.
        assert len(outage) >= (DOWN_TICKS - 2) * 4, f"only {len(outage)} samples in the outage"
        assert all(values[k] == held[k] for k in held)
        # Every tick the meters answered from the start to the return: stored once.
        for source in SOURCES:
            polled = served.polled_seconds(source, t_begin + 1, t_up + 2)
            for metric in ("power_w", "energy_import_kwh"):
                got = stored_seconds(samples, source, metric, t_begin + 1, t_up + 2)
                assert got == sorted(polled), (source, metric, set(polled) ^ set(got))
        assert t_up - t_down >= DOWN_TICKS
        # The chain is whole: every batch, in order, linked to the one before.
        assert col.store
        batches = col.store.batches(AGENT)
        assert [b["seq"] for b in batches] == list(range(1, len(batches) + 1))
        assert {b["chain"] for b in batches} == {"ok"}
        # The window over the outage: no chain issue, no series with a gap.
        ts = sorted(t for _, _, t, _ in samples)
        result = col.window(int(t_down * 1e9) - 3 * 10**9, ts[-1] - 10**9)
        quality = result["quality"]
        chain = quality["chain"]["agents"][AGENT]
        assert (chain["breaks"], chain["gaps"], chain["dropped"]) == ([], [], [])
        assert chain["dropped_samples"] == 0 and chain["dropped_spans"] == []
        assert quality["sources"], "no per-series quality"
        for q in quality["sources"]:
            # 1 s ticks; one tick may be skipped on a loaded CI machine.
            assert q["longest_gap_s"] < 2.5, q
        assert not [i for i in quality["issues"] if "missing" in i or "dropped" in i]
        print(f"{len(outage)} samples polled while the collector was down"
              f" {t_up - t_down:.1f} s, {len(samples)} stored once in {t_end - t_begin:.1f} s")
    finally:
        if col.store:
            col.stop()
