"""A general window's CPU loads folded as signed batches arrive equal the raw samples' result."""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import serve
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.evaluation.site import Site, load_site
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.results.windows import window_result
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.api import create_app
from dcmeter.collectors.web.auth import create_token

T0 = 1_790_000_000.0  # 2026-09-21T14:13:20Z
HOSTS = ["host-0", "host-1", "host-2", "host-3"]
CPU = MetricSpec("cpu_util_pct", "%")
ENERGY = MetricSpec("energy_import_kwh", "kWh", "counter", 4294967.296)
SOURCES = [
    *(SourceInfo(h, "host", "local", {"kind": "compute"}, None) for h in HOSTS),
    SourceInfo("meter-total", "modbus", "127.0.0.1:1/1", {"point": "total"}, 0.005),
    SourceInfo("meter-it", "modbus", "127.0.0.1:2/1", {"point": "it_pdu"}, 0.005),
]
SITE = """
[site]
name = "fold test"
region = "east-2023"

[energy]
total = ["meter-total"]
it = ["meter-it"]
it_point = "it_pdu"

[[general.groups]]
name = "hosts"
kind = "compute"
count = 4
rating = 20000
rating_source = "test"
sources = ["host-0", "host-1", "host-2", "host-3"]
"""
START = T0 + 1200.5  # the window: 20 min after the first tick, off the tick grid
END = T0 + 9600.25


@dataclass
class Site1:
    """A running collector with a general site file."""

    url: str
    store: Store
    site: Site
    token: str
    path: Path | str  # the store's location (reopened by a test)
    key: Ed25519PrivateKey
    prev: bytes = GENESIS
    seq: int = 0

    def post(self, rows: list[tuple[int, int, float, int]]) -> None:
        """Post one signed batch of (ts_ns, source index, metric index, value) rows."""
        self.seq += 1
        arrays = wire.pack_arrays(*zip(*rows, strict=True))  # type: ignore[arg-type]
        batch = Batch("agent-1", self.seq, self.prev, 0, ClockStatus(), SOURCES,
                      [MetricEntry(CPU), MetricEntry(ENERGY)], *arrays)
        body = wire.encode_body(batch)
        self.prev = wire.batch_hash(body)
        r = httpx.post(f"{self.url}/api/v1/batches", content=wire.envelope(body, self.key),
                       headers={"content-type": "application/x-msgpack"})
        assert r.status_code == 200 and r.json()["status"] == "stored", r.text

    def http(self) -> httpx.Client:
        """A client with the engineer's token."""
        return httpx.Client(base_url=self.url, headers={"Authorization": f"Bearer {self.token}"})


@pytest.fixture
def general(tmp_path: Path, store_location: Callable[[str], Path | str]) -> Iterator[Site1]:
    """A collector on 127.0.0.1 evaluating a general site, agent 'agent-1' enrolled."""
    (tmp_path / "site.toml").write_text(SITE)
    site = load_site(tmp_path / "site.toml")
    path = store_location("collector")
    store = Store(path, fold_gap_s=site.quality.max_gap_s)
    key = Ed25519PrivateKey.generate()
    app = create_app(store, Ingest(store, {"agent-1": key.public_key()}, 1 << 20), site)
    token = create_token(store, "engineer")[1]
    try:
        with serve(app) as url:
            yield Site1(url, store, site, token, path, key)
    finally:
        store.close()


def ticks() -> list[list[tuple[int, int, float, int]]]:
    """Three hours at 60 s with a few ms of jitter: one batch per tick.

    host-2 misses 20 minutes (a gap over the 15 min limit), host-3 reports values outside
    0..100 % (the wire refuses non-finite values); the meters count 150 and 100 kW.
    """
    rnd = random.Random(4)
    out = []
    for i in range(181):
        t = T0 + 60 * i
        rows = []
        for h in range(4):
            if h == 2 and 80 <= i < 100:
                continue
            ts = round((t + rnd.uniform(0, 0.05)) * 1e9)
            value = 30 + 20 * math.sin(i / 9 + h)
            if h == 3 and i % 37 == 5:
                value = 120.0 if i % 2 else -5.0
            rows.append((ts, h, value, 0))
        rows.append((round(t * 1e9), 4, 1000 + 150 * i / 60, 1))
        rows.append((round(t * 1e9), 5, 500 + 100 * i / 60, 1))
        out.append([(ts, s, v, m) for ts, s, v, m in rows])
    return out


def post_all(c: Site1, batches: list[list[tuple[int, int, float, int]]]) -> None:
    for rows in batches:
        c.post([(ts, s, m, v) for ts, s, v, m in rows])


def assert_same(got: Any, want: Any, path: str = "") -> None:
    """Equal results: floats to 1e-9 relative, median intervals to 1 ms."""
    if isinstance(want, dict):
        assert isinstance(got, dict) and got.keys() == want.keys(), path
        for k in want:
            assert_same(got[k], want[k], f"{path}.{k}")
    elif isinstance(want, list):
        assert isinstance(got, list) and len(got) == len(want), path
        for i, (a, b) in enumerate(zip(got, want, strict=True)):
            assert_same(a, b, f"{path}[{i}]")
    elif isinstance(want, float) and not isinstance(got, bool):
        if path.endswith("median_interval_s"):
            assert abs(got - want) <= 0.001, path
        else:
            assert got == pytest.approx(want, rel=1e-9, abs=1e-12), path
    else:
        assert got == want, path


def both(c: Site1, wid: int, now: float) -> tuple[dict[str, Any], dict[str, Any]]:
    w = c.store.window(wid)
    assert w is not None
    now_ns = round(now * 1e9)
    return (window_result(c.store, c.site, w, now_ns),
            window_result(c.store, c.site, w, now_ns, use_folds=False))


def usable(c: Site1, wid: int, now: float) -> int:
    """How many folds of the window answer for it as of `now` (its end once closed)."""
    w = c.store.window(wid)
    assert w is not None
    gap = c.site.quality.max_gap_s
    start, end = w.start_ns / 1e9, (w.end_ns / 1e9 if w.end_ns is not None else now)
    return sum(f.usable(start, end, gap, gap) for f in c.store.window_folds(wid).values())


def test_folded_window_equals_raw_open_and_closed(general: Site1) -> None:
    c, batches = general, ticks()
    post_all(c, batches[:21])  # up to T0 + 20 min: the margin before the start
    with c.http() as http:
        w = http.post("/api/v1/windows", json={"kind": "general", "start": rfc3339(START)}).json()
        post_all(c, batches[21:120])
        now = T0 + 60 * 119 + 30
        folded, raw = both(c, w["id"], now)
        assert usable(c, w["id"], now) == 4
        assert_same(folded, raw)
        assert folded["window"]["state"] == "open"
        assert folded["load"]["compute"] is not None and folded["cee"] is not None

        post_all(c, batches[120:161])  # up to END
        http.post(f"/api/v1/windows/{w['id']}/stop",
                  json={"end": rfc3339(END)}).raise_for_status()
        post_all(c, batches[161:])  # after END: the margin, then beyond it
        folded, raw = both(c, w["id"], END + 3600)
        assert usable(c, w["id"], END + 3600) == 4
        # The stored result is the one computed at the stop (collectors/results/frozen.py); computed
        # again now, with the margin's samples, it equals the raw reading.
        online = http.post(f"/api/v1/windows/{w['id']}/reevaluate",
                           json={"reason": "the margin's samples arrived"}).json()
        assert online.pop("revision")["number"] == 2
    assert_same(folded, raw)
    assert_same(online, raw)
    for got, want in ((folded["load"]["compute"], raw["load"]["compute"]),
                      (folded["computing_power"], raw["computing_power"]),
                      (folded["cee"], raw["cee"])):
        assert got is not None and got == pytest.approx(want, rel=1e-9)
    assert folded["load"]["compute"] == pytest.approx(0.3, abs=0.2)
    quality = {q["source"]: q for q in folded["quality"]["sources"]}
    assert quality["host-2"]["interval_ok"] is False
    assert not folded["quality"]["valid"]
    # host-3's loads outside 0..100 % are implausible: left out and named (its fold, which
    # clipped them, is not used: the series is read raw and screened). Read: the window
    # ± 900 s, ticks 6..175; out of range: ticks 42, 79, 116, 153 (i % 37 == 5).
    (bad,) = folded["quality"]["implausible"]
    assert (bad["source"], bad["rule"], bad["count"]) == ("host-3", "percent_out_of_range", 4)
    assert bad["ts"].startswith(rfc3339(T0 + 60 * 42)[:16]) and bad["value"] == -5.0


def test_out_of_order_batch_falls_back_to_raw(general: Site1) -> None:
    c, batches = general, ticks()
    post_all(c, batches[:21])
    with c.http() as http:
        w = http.post("/api/v1/windows", json={"kind": "general", "start": rfc3339(START)}).json()
    post_all(c, batches[21:90])
    late = [r for r in batches[60] if r[1] == 0]  # host-0's sample of an earlier tick, again
    c.post([(ts + 1000, s, m, v) for ts, s, v, m in late])
    post_all(c, batches[90:100])
    now = T0 + 60 * 99 + 10
    folds = c.store.window_folds(w["id"])
    dirty = {sid for sid, f in folds.items() if f.dirty}
    assert len(dirty) == 1 and usable(c, w["id"], now) == 3
    folded, raw = both(c, w["id"], now)
    assert_same(folded, raw)


def test_folds_survive_a_restart(general: Site1) -> None:
    c, batches = general, ticks()
    post_all(c, batches[:21])
    with c.http() as http:
        w = http.post("/api/v1/windows", json={"kind": "general", "start": rfc3339(START)}).json()
    post_all(c, batches[21:100])
    before = {sid: f.to_state() for sid, f in c.store.window_folds(w["id"]).items()}
    assert len(before) == 4
    c.store.close()
    c.store = Store(c.path, fold_gap_s=c.site.quality.max_gap_s)
    after = {sid: f.to_state() for sid, f in c.store.window_folds(w["id"]).items()}
    assert after == before
    # the reopened store goes on folding what arrives (inserted directly: the server holds
    # the old store object)
    for i, rows in enumerate(batches[100:130]):
        batch = Batch("agent-1", 1000 + i, GENESIS, 0, ClockStatus(), SOURCES,
                      [MetricEntry(CPU), MetricEntry(ENERGY)],
                      *wire.pack_arrays(*zip(*[(ts, s, m, v) for ts, s, v, m in rows],
                                             strict=True)))  # type: ignore[arg-type]
        state, _ = c.store.insert_batch(batch, bytes(32), b"", 0)
        assert state == "stored"
    now = T0 + 60 * 129 + 5
    assert usable(c, w["id"], now) == 4
    folded, raw = both(c, w["id"], now)
    assert_same(folded, raw)


def test_window_started_in_the_past_reads_raw(general: Site1) -> None:
    c, batches = general, ticks()
    post_all(c, batches[:150])  # more than the seed limit of samples after the start
    with c.http() as http:
        w = http.post("/api/v1/windows", json={"kind": "general", "start": rfc3339(START)}).json()
    post_all(c, batches[150:160])
    folds = c.store.window_folds(w["id"])
    assert len(folds) == 4 and all(f.from_raw_needed for f in folds.values())
    folded, raw = both(c, w["id"], T0 + 60 * 159 + 5)
    assert_same(folded, raw)
