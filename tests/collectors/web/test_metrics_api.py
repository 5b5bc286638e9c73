"""GET /metrics on a real socket, fed real signed batches: values, labels, promtool's verdict."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import msgpack
import pytest
from conftest import Collector, serve
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from prometheus_client.parser import text_string_to_metric_families

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339
from dcmeter.collectors.evaluation.site import load_site
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.api import create_app

CT = {"content-type": "application/x-msgpack"}
NOW = parse_rfc3339("2026-03-02T12:00:00Z")
STEP_S = 60
TICKS = range(120)  # samples at NOW - 7200 s + 60 s·k: the last one 60 s before NOW
TICKS_PER_BATCH = 10

SITE = """
[site]
name = "metrics site"
region = "east-2023"

[energy]
total = ["meter-total"]
it = ["meter-it"]
it_point = "it_pdu"

[[general.groups]]
name = "r740"
kind = "compute"
count = 10
rating = 20000
rating_source = "test figure"
sources = ["host-1"]

[[general.groups]]
name = "array"
kind = "storage"
count = 2
rating = 5000
rating_source = "test figure"
sources = ["array-1"]
"""

SOURCES = [
    SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"}),
    SourceInfo("meter-it", "modbus", "127.0.0.1:502/2", {"point": "it_pdu"}),
    SourceInfo("host-1", "host", "localhost", {"kind": "compute"}),
    SourceInfo("array-1", "snmp", "127.0.0.1:161", {"kind": "storage"}),
]
METRICS = [
    MetricEntry(MetricSpec("energy_import_kwh", "kWh", "counter")),
    MetricEntry(MetricSpec("cpu_util_pct", "%")),
]


def total_kw(t: float) -> float:
    """Site total power (kW): 200 until an hour before NOW, 160, then 140 for the last 15 min."""
    return 200.0 if t < NOW - 3600 else 160.0 if t < NOW - 900 else 140.0


IT_KW = 100.0


def energy_kwh(kw: float | None, t0: float, t1: float) -> float:
    """The energy (kWh) of [t0, t1] at IT_KW (kw None) or by total_kw, in 1 s steps."""
    return sum((kw if kw is not None else total_kw(t0 + i)) / 3600 for i in range(int(t1 - t0)))


def cpu_pct(source: str, t: float) -> float:
    """CPU load: 90 % before the last hour, then 40 % (hosts) or 20 % (storage)."""
    if t <= NOW - 3600:
        return 90.0
    return 40.0 if source == "host-1" else 20.0


def tick_time(k: int) -> float:
    return NOW - 7200 + STEP_S * k


def site_batch(seq: int, prev: bytes, ticks: range) -> Batch:
    """Every source's sample at each tick: cumulative meter counters and CPU gauges."""
    base = tick_time(0)
    ts: list[int] = []
    src: list[int] = []
    met: list[int] = []
    val: list[float] = []
    for k in ticks:
        t = tick_time(k)
        values = [
            (0, 0, 5000.0 + energy_kwh(None, base, t)),
            (1, 0, 3000.0 + energy_kwh(IT_KW, base, t)),
            (2, 1, cpu_pct("host-1", t)),
            (3, 1, cpu_pct("array-1", t)),
        ]
        for s, m, v in values:
            ts.append(int(t * 1e9))
            src.append(s)
            met.append(m)
            val.append(v)
    sealed = ts[-1] + 1
    return Batch("agent-1", seq, prev, sealed, ClockStatus(synced=True), SOURCES, METRICS,
                 *wire.pack_arrays(ts, src, met, val))


def pdu_batch(seq: int, prev: bytes, agent: str = "agent-2") -> Batch:
    """A small batch of a source the site file does not use (one per agent: each source
    belongs to one agent)."""
    n = 4
    ts = [int((NOW - 600 + seq * 60 + i) * 1e9) for i in range(n)]
    return Batch(agent, seq, prev, ts[-1], ClockStatus(), [SourceInfo(f"pdu-{agent}", "snmp", "x")],
                 [MetricEntry(MetricSpec("power_w", "W"))],
                 *wire.pack_arrays(ts, [0] * n, [0] * n, [500.0] * n))


@dataclass
class Site:
    url: str
    store: Store
    keys: dict[str, Ed25519PrivateKey]


@pytest.fixture
def site(tmp_path: Path, store_location: Callable[[str], Path | str]) -> Iterator[Site]:
    """A collector with a [general] site file whose clock stands at NOW; two agents enrolled."""
    (tmp_path / "site.toml").write_text(SITE)
    store = Store(store_location("collector"))
    keys = {a: Ed25519PrivateKey.generate() for a in ("agent-1", "agent-2")}
    ingest = Ingest(store, {a: k.public_key() for a, k in keys.items()}, max_bytes=1 << 20)
    app = create_app(store, ingest, load_site(tmp_path / "site.toml"), clock=lambda: int(NOW * 1e9))
    try:
        with serve(app) as url:
            yield Site(url, store, keys)
    finally:
        store.close()


def post(url: str, raw: bytes, headers: dict[str, str] = CT) -> httpx.Response:
    return httpx.post(f"{url}/api/v1/batches", content=raw, headers=headers)


def post_site_batches(s: Site) -> int:
    """Post agent-1's two hours in chained batches; return how many samples were sent."""
    prev, sent = GENESIS, 0
    for seq, first in enumerate(range(0, len(TICKS), TICKS_PER_BATCH), start=1):
        b = site_batch(seq, prev, TICKS[first : first + TICKS_PER_BATCH])
        r = post(s.url, wire.seal(b, s.keys["agent-1"]))
        assert r.status_code == 200 and r.json()["chain"] == "ok", r.text
        prev, sent = wire.batch_hash(wire.encode_body(b)), sent + len(b)
    return sent


def scrape(url: str) -> tuple[str, dict[tuple[str, frozenset[tuple[str, str]]], float]]:
    """GET /metrics; return the text and every sample by (name, labels)."""
    r = httpx.get(f"{url}/metrics")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/plain; version=0.0.4")
    values = {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(r.text)
        for sample in family.samples
    }
    return r.text, values


def value(values: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str,
          **labels: str) -> float | None:
    return values.get((name, frozenset(labels.items())))


def promtool_check(text: str) -> None:
    """`promtool check metrics` must accept the exposition without a lint remark."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install the Debian package prometheus (.ci/run does)")
    out = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                         capture_output=True, timeout=30)
    report = (out.stdout + out.stderr).decode()
    assert out.returncode == 0 and not report.strip(), report


def test_site_figures_are_what_the_samples_imply(site: Site) -> None:
    sent = post_site_batches(site)
    text, v = scrape(site.url)
    promtool_check(text)
    # The newest sample is 60 s old: the power is each meter's mean over what the last 15 min
    # cover, the PUE the ratio of the energies counted in the last hour.
    covered = (NOW - 900, tick_time(TICKS[-1]))
    span = covered[1] - covered[0]
    assert value(v, "dcmeter_site_total_power_watts") == pytest.approx(
        energy_kwh(None, *covered) * 3.6e6 / span, rel=1e-9)
    assert value(v, "dcmeter_site_total_power_watts") == pytest.approx(140_000.0)
    assert value(v, "dcmeter_site_it_power_watts") == pytest.approx(IT_KW * 1000)
    hour = (NOW - 3600, tick_time(TICKS[-1]))
    expected_pue = energy_kwh(None, *hour) / energy_kwh(IT_KW, *hour)
    assert value(v, "dcmeter_pue_last_hour") == pytest.approx(expected_pue, rel=1e-9)
    assert 1.5 < expected_pue < 1.6  # 160 kW and 140 kW over 100 kW, not the older 200 kW
    assert value(v, "dcmeter_pue_last_hour_valid") == 1.0
    assert value(v, "dcmeter_load_last_hour_ratio", kind="compute") == pytest.approx(0.40)
    assert value(v, "dcmeter_load_last_hour_ratio", kind="storage") == pytest.approx(0.20)
    assert value(v, "dcmeter_load_last_hour_ratio", kind="network") is None  # not configured
    batches = len(range(0, len(TICKS), TICKS_PER_BATCH))
    assert value(v, "dcmeter_ingest_batches_accepted_total") == batches
    assert value(v, "dcmeter_ingest_samples_accepted_total") == sent
    assert value(v, "dcmeter_agent_batches_stored_total", agent="agent-1") == batches
    assert value(v, "dcmeter_agent_samples_stored_total", agent="agent-1") == sent
    assert value(v, "dcmeter_agent_chain_ok", agent="agent-1") == 1.0
    last_tick = tick_time(TICKS[-1])
    assert value(v, "dcmeter_agent_last_batch_sealed_timestamp_seconds", agent="agent-1") == (
        pytest.approx(last_tick, abs=1e-6))
    received = value(v, "dcmeter_agent_last_batch_received_timestamp_seconds", agent="agent-1")
    assert received is not None and abs(received - time.time()) < 60


def test_no_samples_means_no_figures_and_not_valid(site: Site) -> None:
    text, v = scrape(site.url)
    promtool_check(text)
    for name in ("dcmeter_site_total_power_watts", "dcmeter_site_it_power_watts",
                 "dcmeter_pue_last_hour"):
        assert not any(k[0] == name for k in v), name
    assert value(v, "dcmeter_pue_last_hour_valid") == 0.0
    assert value(v, "dcmeter_ingest_batches_accepted_total") == 0.0
    assert not any(k[0].startswith("dcmeter_agent_") for k in v)


def test_rejections_chain_breaks_and_open_windows(site: Site) -> None:
    k1, k2 = site.keys["agent-1"], site.keys["agent-2"]
    b1 = pdu_batch(1, GENESIS)
    assert post(site.url, wire.seal(b1, k2)).json()["chain"] == "ok"
    h1 = wire.batch_hash(wire.encode_body(b1))
    assert post(site.url, wire.seal(pdu_batch(2, h1), k2)).json()["chain"] == "ok"
    _, before = scrape(site.url)  # later scrapes add only the rows stored since this one
    assert value(before, "dcmeter_agent_chain_ok", agent="agent-2") == 1.0
    assert value(before, "dcmeter_agent_batches_stored_total", agent="agent-2") == 2
    assert post(site.url, wire.seal(pdu_batch(3, b"\1" * 32), k2)).json()["chain"] == "break"
    good = pdu_batch(1, GENESIS, agent="agent-1")
    assert post(site.url, wire.seal(good, k1)).json()["chain"] == "ok"
    assert post(site.url, wire.seal(good, k1)).json()["status"] == "duplicate"
    body, _ = wire.open_envelope(wire.seal(good, k1))
    refused = [
        (b"not msgpack", 400),
        (b"\x00" * 10, 400),
        (wire.seal(pdu_batch(1, GENESIS, agent="stranger"), k1), 401),
        (msgpack.packb({"body": body, "sig": bytes(64)}, use_bin_type=True), 403),
        (wire.seal(pdu_batch(1, GENESIS, agent="agent-1"), k2), 403),
        (wire.seal(pdu_batch(2, GENESIS), k2), 409),
        (b"\0" * ((1 << 20) + 1), 413),
    ]
    for raw, status in refused:
        assert post(site.url, raw).status_code == status
    assert post(site.url, b"x", {"content-type": "text/plain"}).status_code == 415
    site.store.open_window("infrastructure", int((NOW - 60) * 1e9), None, int(NOW * 1e9))
    site.store.open_window("ai", int((NOW - 60) * 1e9), None, int(NOW * 1e9))
    closed = site.store.open_window("ai", int((NOW - 60) * 1e9), None, int(NOW * 1e9))
    site.store.close_window(closed.id, int(NOW * 1e9))

    text, v = scrape(site.url)
    promtool_check(text)
    rejected = "dcmeter_ingest_batches_rejected_total"
    assert value(v, rejected, status="400", reason="malformed") == 2
    assert value(v, rejected, status="401", reason="unknown_agent") == 1
    assert value(v, rejected, status="403", reason="bad_signature") == 2
    assert value(v, rejected, status="409", reason="seq_conflict") == 1
    assert value(v, rejected, status="413", reason="too_large") == 1
    assert sum(x for (name, _), x in v.items() if name == rejected) == 7  # 415 is not a batch
    assert value(v, "dcmeter_agent_chain_ok", agent="agent-2") == 0.0
    assert value(v, "dcmeter_agent_chain_breaks_total", agent="agent-2") == 1
    assert value(v, "dcmeter_agent_chain_ok", agent="agent-1") == 1.0
    assert value(v, "dcmeter_agent_batches_stored_total", agent="agent-2") == 3
    assert value(v, "dcmeter_ingest_batches_accepted_total") == 4  # the duplicate is not new
    assert value(v, "dcmeter_ingest_samples_accepted_total") == 16
    assert not any(("agent", "stranger") in labels for _, labels in v)  # bounded labels
    assert value(v, "dcmeter_windows_open", kind="infrastructure") == 1
    assert value(v, "dcmeter_windows_open", kind="ai") == 1
    assert value(v, "dcmeter_windows_open", kind="general") == 0


def test_openmetrics_on_request_and_the_plain_collector(collector: Collector) -> None:
    r = httpx.get(f"{collector.url}/metrics",
                  headers={"accept": "application/openmetrics-text; version=1.0.0"})
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("application/openmetrics-text")
    assert r.text.rstrip().endswith("# EOF")
    assert "dcmeter_pue_last_hour_valid 0.0" in r.text
    # The conftest collector's site has no [general] section: no load family samples.
    text, v = scrape(collector.url)
    promtool_check(text)
    assert not any(name == "dcmeter_load_last_hour_ratio" for name, _ in v)
    assert value(v, "dcmeter_scrape_duration_seconds") is not None
