"""`dcmeter evaluate` offline and the collector's window result are one code path."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
from conftest import ROOT, SITE_TOML, Collector

from dcmeter.agent import wire
from dcmeter.agent.cli import sample_record
from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry

T0 = 1_790_000_000  # 2026-09-21T14:13:20Z
ENERGY = MetricSpec("energy_import_kwh", "kWh", "counter", 4294967.296)
POWER = MetricSpec("power_w", "W")
SOURCES = {
    "meter-total": SourceInfo("meter-total", "modbus", "127.0.0.1:1/1", {"point": "total"}, 0.005,
                              {"profile": "schneider_pm5100", "make": "Schneider Electric"}),
    "meter-it": SourceInfo("meter-it", "modbus", "127.0.0.1:2/1", {"point": "it_pdu"}, 0.005),
}


def readings() -> list[tuple[SourceInfo, Reading]]:
    """Two hours at 60 s: total 150 kW, IT 100 kW; the IT meter wraps once; green none."""
    out = []
    for i in range(121):
        t = (T0 + 60 * i) * 10**9
        it_kwh = (4294967.296 - 50 + 100 * i / 60) % 4294967.296
        out += [
            (SOURCES["meter-total"], Reading(ENERGY, 1000 + 150 * i / 60, t)),
            (SOURCES["meter-total"], Reading(POWER, 150_000.0, t)),
            (SOURCES["meter-it"], Reading(ENERGY, it_kwh, t)),
            (SOURCES["meter-it"], Reading(POWER, 100_000.0, t)),
        ]
    return out


def as_batch(pairs: list[tuple[SourceInfo, Reading]]) -> Batch:
    sources = list(SOURCES.values())
    metrics = [MetricEntry(ENERGY), MetricEntry(POWER)]
    arrays = wire.pack_arrays(
        [r.ts_ns for _, r in pairs],
        [sources.index(s) for s, _ in pairs],
        [0 if r.metric is ENERGY else 1 for _, r in pairs],
        [r.value for _, r in pairs],
    )
    return Batch("agent-1", 1, GENESIS, 0, ClockStatus(), sources, metrics, *arrays)


def test_offline_evaluate_equals_the_collector_result(tmp_path: Path, collector: Collector) -> None:
    pairs = readings()
    samples = tmp_path / "samples.jsonl"
    samples.write_text("".join(json.dumps(sample_record(s, r)) + "\n" for s, r in pairs))
    site = tmp_path / "site-offline.toml"
    site.write_text(SITE_TOML)
    start, end = "2026-09-21T14:30:00Z", "2026-09-21T15:30:00Z"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    r = subprocess.run(
        [sys.executable, "-m", "dcmeter", "evaluate", "--site", str(site), "--samples",
         str(samples), "--start", start, "--end", end, "--json"],
        capture_output=True, text=True, env=env, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    offline = json.loads(r.stdout)
    # hand-computed: 1 h at 150 kW and 100 kW
    assert abs(offline["energy_kwh"]["total"] - 150.0) < 1e-6
    assert abs(offline["energy_kwh"]["it"] - 100.0) < 1e-6
    assert abs(offline["pue"] - 1.5) < 1e-9 and offline["pue_level"] == 3
    assert abs(offline["carbon_kg"] - 150 * 0.55) < 1e-6 and abs(offline["cue"] - 0.825) < 1e-9
    assert offline["sources"]["it"]["events"][0]["kind"] == "wrap"

    key = collector.keys["agent-1"]
    resp = httpx.post(f"{collector.url}/api/v1/batches", content=wire.seal(as_batch(pairs), key),
                      headers={"content-type": "application/x-msgpack"})
    assert resp.status_code == 200
    base = f"{collector.url}/api/v1/windows"
    with collector.http() as http:
        w = http.post(base, json={"kind": "infrastructure", "start": start}).json()
        http.post(f"{base}/{w['id']}/stop", json={"end": end}).raise_for_status()
        online = http.get(f"{base}/{w['id']}").json()
    for extra in ("id", "kind", "state", "note", "opened_by", "closed_by", "scope"):
        online["window"].pop(extra)
    # a closed window's stored result says which revision it is; offline has none
    revision = online.pop("revision")
    assert (revision["number"], revision["reason"]) == (1, "window stopped")
    assert "revision" not in offline
    # the store-side checks exist only at the collector
    assert offline["quality"].pop("chain")["checked"] is False
    assert offline["quality"].pop("clock")["checked"] is False
    assert online["quality"].pop("chain")["checked"] is True
    assert online["quality"].pop("clock")["checked"] is True
    assert online["quality"].pop("owners") == {
        "meter-total": [{"agent": "agent-1", "via": "first_delivery", "confirmed": False,
                         "from": None, "until": None}],
        "meter-it": [{"agent": "agent-1", "via": "first_delivery", "confirmed": False,
                      "from": None, "until": None}],
    }
    assert online["quality"].pop("source_changes") == []
    # the instrument list: only the collector knows the agent, protocol and address
    store_side = ("agent", "protocol", "address", "device")
    on_rows, off_rows = online.pop("instruments"), offline.pop("instruments")
    assert [(r["source"], r["agent"], r["protocol"]) for r in on_rows] == [
        ("meter-it", "agent-1", "modbus"), ("meter-total", "agent-1", "modbus")]
    assert all(r[k] is None for r in off_rows for k in store_side[:3])
    assert [r["device"] for r in on_rows] == [
        {}, {"profile": "schneider_pm5100", "make": "Schneider Electric"}]
    # 14:30:20 .. 15:29:20 at 60 s: 60 times, energy and power each
    assert [r["samples"] for r in on_rows] == [120, 120]
    assert [{k: v for k, v in r.items() if k not in store_side} for r in on_rows] == [
        {k: v for k, v in r.items() if k not in store_side} for r in off_rows]
    assert online == offline
