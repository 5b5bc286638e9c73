"""Hostile agent, finite but absurd values: a real collector on a socket, agent-1's real key.

Issue 12, item 3: an enrolled agent's counter going 0 -> 1e308 kWh in a minute made E_total
1e308, PUE 1.5e305 and `valid: true`, the report routes answered 500 and /metrics showed
NaN. Each test posts signed batches, opens and closes a window over the API and checks that
the implausible sample is flagged by name, left out of the figure and invalidates the result,
while every route answers 200 with finite JSON.
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import ROOT, SITE_TOML, Collector, serve
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import wire
from dcmeter.agent.cli import sample_record
from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.evaluation.site import load_site
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.api import create_app
from dcmeter.collectors.web.auth import create_token

CT = {"content-type": "application/x-msgpack"}
KWH = MetricSpec("energy_import_kwh", "kWh", "counter")
POWER = MetricSpec("power_w", "W")
CPU = MetricSpec("cpu_util_pct", "%")
TOTAL = SourceInfo("meter-total", "modbus", "10.0.0.1:502/1", {"point": "total", "kind": "meter"})
IT = SourceInfo("meter-it", "modbus", "10.0.0.1:502/2", {"point": "it_pdu", "kind": "meter"})
HOST = SourceInfo("host-1", "host", "localhost", {"kind": "compute"})
STEP_S = 60
Row = tuple[SourceInfo, MetricSpec, int, float]  # source, metric, epoch s, value


class Agent:
    """Agent-1 shipping signed, chained batches of chosen samples to a collector."""

    def __init__(self, url: str, key: Ed25519PrivateKey) -> None:
        self.url, self.key, self.seq, self.prev = url, key, 0, GENESIS

    def send(self, rows: Sequence[Row]) -> None:
        """Seal `rows` into the next batch and post it; it must be stored."""
        sources = list({r[0].id: r[0] for r in rows}.values())
        metrics = list({r[1].name: r[1] for r in rows}.values())
        self.seq += 1
        arrays = wire.pack_arrays(
            [t * 10**9 for _, _, t, _ in rows], [sources.index(s) for s, _, _, _ in rows],
            [metrics.index(m) for _, m, _, _ in rows], [v for _, _, _, v in rows],
        )
        batch = Batch("agent-1", self.seq, self.prev, time.time_ns(), ClockStatus(), sources,
                      [MetricEntry(m) for m in metrics], *arrays)
        r = httpx.post(f"{self.url}/api/v1/batches", content=wire.seal(batch, self.key),
                       headers=CT)
        assert r.status_code == 200 and r.json()["status"] == "stored", r.text
        self.prev = wire.batch_hash(wire.encode_body(batch))


def hour() -> int:
    """The start (epoch s, on a whole minute) of a window of one hour ending a minute ago."""
    return (int(time.time()) // STEP_S) * STEP_S - 3600 - STEP_S


def ramp(source: SourceInfo, metric: MetricSpec, t0: int, first: float, per_step: float,
         steps: int = 60) -> list[Row]:
    """Samples every minute from t0 (epoch s), rising by `per_step` each minute."""
    return [(source, metric, t0 + i * STEP_S, first + i * per_step) for i in range(steps + 1)]


def window(c: Collector, kind: str, start: int, end: int) -> dict[str, Any]:
    """Open and close a window over [start, end] (epoch s) and return its result (200)."""
    with c.http() as http:
        r = http.post(f"{c.url}/api/v1/windows", json={"kind": kind, "start": rfc3339(start)})
        assert r.status_code == 201, r.text
        wid = r.json()["id"]
        r = http.post(f"{c.url}/api/v1/windows/{wid}/stop", json={"end": rfc3339(end)})
        assert r.status_code == 200, r.text
        r = http.get(f"{c.url}/api/v1/windows/{wid}")
        assert r.status_code == 200, r.text
        result = r.json()
        for fmt in ("html", "json"):
            for lang in ("en", "zh"):
                rep = http.get(f"{c.url}/api/v1/windows/{wid}/report",
                               params={"format": fmt, "lang": lang})
                assert rep.status_code == 200, (fmt, lang, rep.text[:300])
                if fmt == "json":
                    json.loads(rep.text, parse_constant=_refuse)  # finite JSON only
    return result


def _refuse(name: str) -> Any:
    raise AssertionError(f"non-finite number {name} in a JSON answer")


def metrics_values(c: Collector) -> dict[str, float]:
    """The unlabelled samples of /metrics by name; every one must be a finite number."""
    r = httpx.get(f"{c.url}/metrics")
    assert r.status_code == 200
    out = {}
    for line in r.text.splitlines():
        if line and not line.startswith("#") and "{" not in line:
            name, value = line.rsplit(" ", 1)
            assert math.isfinite(float(value)), line
            out[name] = float(value)
    return out


def implausible(result: dict[str, Any], source: str, metric: str, rule: str) -> dict[str, Any]:
    """The result's one `quality.implausible` entry of (source, metric, rule)."""
    found = [e for e in result["quality"]["implausible"]
             if e["source"] == source and e["metric"] == metric and e["rule"] == rule]
    assert len(found) == 1, result["quality"]["implausible"]
    return found[0]


def test_counter_jumping_to_1e308_is_flagged_and_left_out(collector: Collector) -> None:
    t0 = hour()
    agent = Agent(collector.url, collector.keys["agent-1"])
    # 150 kWh and 120 kWh in the hour: PUE 1.25, level 2; then meter-total jumps to 1e308
    # half a minute after the 30th minute and is back on its ramp at the 31st.
    rows = ramp(TOTAL, KWH, t0, 1000.0, 2.5) + ramp(IT, KWH, t0, 500.0, 2.0)
    bad = t0 + 30 * STEP_S + 30
    agent.send([*rows, (TOTAL, KWH, bad, 1e308)])
    result = window(collector, "infrastructure", t0, t0 + 3600)
    assert result["energy_kwh"]["total"] == pytest.approx(150.0)
    assert result["energy_kwh"]["it"] == pytest.approx(120.0)
    assert result["pue"] == pytest.approx(1.25)
    q = result["quality"]
    assert q["valid"] is False
    e = implausible(result, "meter-total", "energy_import_kwh", "counter_increase")
    assert e["ts"] == rfc3339(bad) and e["value"] == 1e308 and e["count"] == 1
    # 200 MW (a meter's default) + 10 % for 30 s, plus 1 kWh of register resolution:
    # 200e6 x 1.1 x 30 / 3.6e6 + 1 = 1834.33 kWh.
    assert e["span_s"] == 30 and e["limit"] == pytest.approx(1834.333333)
    assert any("meter-total energy_import_kwh" in i and "implausible" in i for i in q["issues"])
    with collector.http() as http:
        html = http.get(f"{collector.url}/api/v1/windows/{result['window']['id']}/report").text
    assert "Implausible samples" in html and "1e+308 kWh" in html
    values = metrics_values(collector)
    assert values["dcmeter_pue_last_hour_valid"] == 0.0
    assert "dcmeter_pue_last_hour" not in values or values["dcmeter_pue_last_hour"] < 10


def test_offline_evaluate_flags_the_same_sample_as_the_collector(
    tmp_path: Path, collector: Collector
) -> None:
    t0 = hour()
    rows = ramp(TOTAL, KWH, t0, 1000.0, 2.5) + ramp(IT, KWH, t0, 500.0, 2.0)
    rows.append((TOTAL, KWH, t0 + 30 * STEP_S + 30, 1e308))
    Agent(collector.url, collector.keys["agent-1"]).send(rows)
    online = window(collector, "infrastructure", t0, t0 + 3600)
    samples, site = tmp_path / "samples.jsonl", tmp_path / "site.toml"
    samples.write_text("".join(json.dumps(sample_record(s, Reading(m, v, t * 10**9))) + "\n"
                               for s, m, t, v in rows))
    site.write_text(SITE_TOML)
    r = subprocess.run(
        [sys.executable, "-m", "dcmeter", "evaluate", "--site", str(site), "--samples",
         str(samples), "--start", rfc3339(t0), "--end", rfc3339(t0 + 3600), "--json"],
        capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=60,
    )
    assert r.returncode == 0, r.stderr
    offline = json.loads(r.stdout, parse_constant=_refuse)
    assert offline["quality"]["implausible"] == online["quality"]["implausible"]
    assert offline["quality"]["valid"] is False
    assert offline["energy_kwh"] == online["energy_kwh"]


def test_power_spike_above_range_is_flagged_and_left_out(collector: Collector) -> None:
    t0 = hour()
    agent = Agent(collector.url, collector.keys["agent-1"])
    # meter-it has no counter: its 120 kW are integrated; one reading says 5 GW.
    rows = ramp(TOTAL, KWH, t0, 1000.0, 2.5) + ramp(IT, POWER, t0, 120_000.0, 0.0)
    spike = t0 + 20 * STEP_S + 10
    agent.send([*rows, (IT, POWER, spike, 5e9), (IT, POWER, spike + 5, -1e12)])
    result = window(collector, "infrastructure", t0, t0 + 3600)
    assert result["energy_kwh"]["it"] == pytest.approx(120.0)
    assert result["pue"] == pytest.approx(1.25)
    assert result["quality"]["valid"] is False
    e = implausible(result, "meter-it", "power_w", "power_above_range")
    assert e["ts"] == rfc3339(spike) and e["value"] == 5e9 and e["count"] == 1
    assert e["limit"] == pytest.approx(220e6)  # 200 MW + 10 %
    e = implausible(result, "meter-it", "power_w", "power_below_range")
    assert e["value"] == -1e12 and e["limit"] == pytest.approx(-2e6)  # 1 % of 200 MW
    metrics_values(collector)


def test_pue_below_1_is_not_graded(collector: Collector) -> None:
    t0 = hour()
    agent = Agent(collector.url, collector.keys["agent-1"])
    # IT 120 kWh but total only 100 kWh: PUE 0.833, physically impossible.
    agent.send(ramp(TOTAL, KWH, t0, 1000.0, 100 / 60) + ramp(IT, KWH, t0, 500.0, 2.0))
    result = window(collector, "infrastructure", t0, t0 + 3600)
    assert result["pue"] == pytest.approx(100 / 120)
    assert result["pue_level"] is None
    assert result["quality"]["valid"] is False
    assert any("PUE below 1" in i for i in result["quality"]["issues"])
    values = metrics_values(collector)
    assert values["dcmeter_pue_last_hour_valid"] == 0.0


GENERAL_SITE = """
[site]
name = "test site"
region = "east-2023"

[energy]
total = ["meter-total"]
it = ["meter-it"]
it_point = "it_pdu"

[general]
[[general.groups]]
name = "servers"
kind = "compute"
count = 10
rating = 1000
rating_source = "test"
sources = ["host-1"]
"""


@pytest.fixture
def general_collector(
    tmp_path: Path, store_location: Callable[[str], Path | str]
) -> Iterator[Collector]:
    """A collector whose site has a [general] section measuring host-1's CPU load (its store
    on the `--store` backend)."""
    site_file = tmp_path / "site.toml"
    site_file.write_text(GENERAL_SITE)
    store = Store(store_location("general"))
    key = Ed25519PrivateKey.generate()
    ingest = Ingest(store, {"agent-1": key.public_key()}, max_bytes=1 << 20)
    app = create_app(store, ingest, load_site(site_file))
    tokens = {role: create_token(store, role)[1] for role in ("engineer", "reader")}
    try:
        with serve(app) as url:
            yield Collector(url, store, ingest, {"agent-1": key}, [0.0], tokens)
    finally:
        store.close()


@pytest.mark.parametrize("open_first", [False, True], ids=["raw", "folded"])
def test_cpu_load_of_150_percent_is_flagged_and_left_out(
    general_collector: Collector, open_first: bool
) -> None:
    c = general_collector
    t0 = hour()
    agent = Agent(c.url, c.keys["agent-1"])
    wid = None
    if open_first:  # the window folds the CPU samples as they arrive (collectors/storage/store_folds.py)
        with c.http() as http:
            r = http.post(f"{c.url}/api/v1/windows", json={"kind": "general",
                                                          "start": rfc3339(t0)})
            wid = r.json()["id"]
    cpu = ramp(HOST, CPU, t0, 50.0, 0.0)
    cpu[10] = (HOST, CPU, cpu[10][2], 150.0)  # one minute at 150 %
    agent.send(ramp(TOTAL, KWH, t0, 1000.0, 2.5) + ramp(IT, KWH, t0, 500.0, 2.0) + cpu)
    if wid is None:
        result = window(c, "general", t0, t0 + 3600)
    else:
        with c.http() as http:
            http.post(f"{c.url}/api/v1/windows/{wid}/stop", json={"end": rfc3339(t0 + 3600)})
            result = http.get(f"{c.url}/api/v1/windows/{wid}").json()
    # Without the 150 % sample the step to the next one carries 50 %: the mean is 0.5.
    assert result["load"]["compute"] == pytest.approx(0.5)
    assert result["quality"]["valid"] is False
    e = implausible(result, "host-1", "cpu_util_pct", "percent_out_of_range")
    assert e["ts"] == rfc3339(t0 + 10 * STEP_S) and e["value"] == 150.0
    assert e["limit"] == 100.0
    metrics_values(c)
