"""Runs of AI windows over HTTP on a real socket: recorded once, refused clearly, evaluated."""

from __future__ import annotations

import sqlite3
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import SITE_TOML, Collector, serve
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339
from dcmeter.collectors.evaluation.site import load_site
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.api import create_app
from dcmeter.collectors.web.auth import create_token

AI_SITE = SITE_TOML.replace('"meter-it"', '"bmc-1"').replace('"meter-total"', '"bmc-1"') + """
[ai]
servers = ["bmc-1"]
"""
START = "2026-06-01T00:00:00Z"
T0 = parse_rfc3339(START)
BMC = SourceInfo("bmc-1", "ipmi", "127.0.0.1:623", {"point": "it_input", "kind": "compute"})
SPANS = [(100 + 400 * k, 400 + 400 * k) for k in range(5)]  # s after T0
WATTS = [1200.0, 1500.0, 1200.0, 1800.0, 1200.0]


@dataclass
class AiCollector:
    url: str
    store: Store
    key: Ed25519PrivateKey
    token: str  # an engineer's bearer token


@pytest.fixture
def ai_collector(
    tmp_path: Path, store_location: Callable[[str], Path | str]
) -> Iterator[AiCollector]:
    """A collector on 127.0.0.1 whose site file has an [ai] section; agent 'agent-1' enrolled."""
    (tmp_path / "site.toml").write_text(AI_SITE)
    store = Store(store_location("collector"))
    key = Ed25519PrivateKey.generate()
    ingest = Ingest(store, {"agent-1": key.public_key()}, max_bytes=1 << 20)
    app = create_app(store, ingest, load_site(tmp_path / "site.toml"))
    _, token = create_token(store, "engineer")
    try:
        with serve(app) as url:
            yield AiCollector(url, store, key, token)
    finally:
        store.close()


@pytest.fixture
def http(ai_collector: AiCollector) -> Iterator[httpx.Client]:
    """A client sending the AI collector's engineer token."""
    with httpx.Client(headers={"Authorization": f"Bearer {ai_collector.token}"}) as client:
        yield client


def watts(t: float) -> float:
    for (a, b), w in zip(SPANS, WATTS, strict=True):
        if a <= t <= b:
            return w
    return 100.0


def power_batch() -> Batch:
    """The BMC's power every 10 s over 2100 s: WATTS[k] within run k, 100 W between."""
    offsets = [10.0 * i for i in range(211)]
    ts = [int((T0 + t) * 1e9) for t in offsets]
    arrays = wire.pack_arrays(ts, [0] * len(ts), [0] * len(ts), [watts(t) for t in offsets])
    return Batch("agent-1", 1, GENESIS, ts[-1], ClockStatus(synced=True), [BMC],
                 [MetricEntry(MetricSpec("power_w", "W"))], *arrays)


def iso(offset: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(T0 + offset))


def run(k: int, **extra: Any) -> dict[str, Any]:
    a, b = SPANS[k]
    return {"start": iso(a), "end": iso(b), "phase": "infer", "model": "resnet-50",
            "repetition": k + 1, "flops": 1.8e13, "precision": "fp16", "quality": 0.77,
            "exit_status": 0, **extra}


def test_runs_are_recorded_listed_and_evaluated(ai_collector: AiCollector, http: httpx.Client) -> None:
    c = ai_collector
    r = http.post(f"{c.url}/api/v1/batches", content=wire.seal(power_batch(), c.key),
                   headers={"content-type": "application/x-msgpack"})
    assert r.status_code == 200 and r.json()["status"] == "stored"
    base = f"{c.url}/api/v1/windows"
    w = http.post(base, json={"kind": "ai", "start": START, "note": "resnet-50"}).json()
    runs = f"{base}/{w['id']}/runs"
    bodies = [run(k, exit_status=(1 if k == 3 else 0)) for k in range(5)]
    for body in reversed(bodies):  # listed by start time whatever the order of arrival
        r = http.post(runs, json=body)
        assert r.status_code == 201, r.text
        assert r.json()["status"] == "stored" and r.json()["start"] == body["start"]
    again = http.post(runs, json=bodies[0])
    assert again.status_code == 200 and again.json()["status"] == "duplicate"
    other = http.post(runs, json={**bodies[0], "flops": 2e13})
    assert other.status_code == 409 and "repetition 1 of infer resnet-50" in other.json()["detail"]
    listed = http.get(runs).json()
    assert [x["repetition"] for x in listed] == [1, 2, 3, 4, 5]
    assert listed[0]["flops"] == 1.8e13 and all(x["window"] == w["id"] for x in listed)
    assert http.post(f"{base}/{w['id']}/stop", json={"end": iso(2100)}).status_code == 200

    result = http.get(f"{base}/{w['id']}").json()
    assert result["kind"] == "ai" and result["window"]["kind"] == "ai"
    # E = P x 300 s: 100, 125, 100, 150, 100 Wh; AEE = 18000 GFLOPs / E.
    got = [(x["energy_wh"], x["aee_gflops_per_wh"], x["valid"]) for x in result["runs"]]
    want = [(100.0, 180.0, True), (125.0, 144.0, True), (100.0, 180.0, True),
            (150.0, 120.0, False), (100.0, 180.0, True)]
    for (e, aee, ok), (we, waee, wok) in zip(got, want, strict=True):
        assert e == pytest.approx(we) and aee == pytest.approx(waee) and ok is wok
    assert result["runs"][3]["issues"] == ["failed run: exit status 1"]
    assert result["aee_gflops_per_wh"] == pytest.approx((180 + 144 + 180 + 180) / 4)
    assert result["tasks"][0]["valid_runs"] == 4 and result["quality"]["valid"] is False
    assert any("fewer than 5" in i for i in result["quality"]["issues"])
    assert result["quality"]["chain"]["ok"] is True


def test_runs_outside_or_malformed_are_refused(ai_collector: AiCollector, http: httpx.Client) -> None:
    base = f"{ai_collector.url}/api/v1/windows"
    w = http.post(base, json={"kind": "ai", "start": iso(50)}).json()
    runs = f"{base}/{w['id']}/runs"
    early = http.post(runs, json=run(0, start=iso(0)))
    assert early.status_code == 422 and "starts before window" in early.json()["detail"]
    naive = http.post(runs, json=run(0, start="2026-06-01T00:01:40"))
    assert naive.status_code == 422 and "timezone" in str(naive.json()["detail"])
    backwards = http.post(runs, json=run(0, end=iso(90)))
    assert backwards.status_code == 422 and "not after start" in str(backwards.json()["detail"])
    none = run(0)
    del none["flops"]
    assert http.post(runs, json=none).status_code == 422
    assert http.post(runs, json=run(0, phase="serve")).status_code == 422
    assert http.post(runs, json=run(0, speed="fast")).status_code == 422
    http.post(f"{base}/{w['id']}/stop", json={"end": iso(800)})
    late = http.post(runs, json=run(2))  # 900-1200 s: after the window's end
    assert late.status_code == 422 and "ends after window" in late.json()["detail"]
    assert http.post(runs, json=run(1)).status_code == 201  # 500-800 s: inside
    assert http.post(f"{base}/999/runs", json=run(0)).status_code == 404
    assert http.get(f"{base}/999/runs").status_code == 404
    assert len(http.get(runs).json()) == 1


def test_infrastructure_windows_take_no_runs_and_no_ai_section_is_reported(
    collector: Collector,
) -> None:
    base = f"{collector.url}/api/v1/windows"
    http = collector.http()
    infra = http.post(base, json={"kind": "infrastructure", "start": START}).json()
    r = http.post(f"{base}/{infra['id']}/runs", json=run(0))
    assert r.status_code == 422 and "runs belong to ai windows" in r.json()["detail"]
    ai = http.post(base, json={"kind": "ai", "start": START})
    assert ai.status_code == 201
    assert http.post(f"{base}/{ai.json()['id']}/runs", json=run(0)).status_code == 201
    result = http.get(f"{base}/{ai.json()['id']}").json()
    assert result["quality"]["valid"] is False and result["aee_gflops_per_wh"] is None
    assert result["quality"]["issues"][0].startswith("the site file has no [ai] section")


def test_an_older_database_gains_the_runs_table(tmp_path: Path) -> None:
    # SQLite only: a store file from an older release (PostgreSQL stores start versioned).
    path = tmp_path / "c.sqlite"
    Store(path).close()
    db = sqlite3.connect(path)  # as a database made before runs (and schema versions) existed
    db.execute("DROP TABLE runs")
    db.execute("DROP TABLE schema_version")
    db.commit()
    db.close()
    store = Store(path)
    w = store.open_window("ai", 0, None, 0)
    status, stored = store.add_run(w.id, run(0), 1, 2, 3)
    assert status == "stored" and store.runs(w.id) == [stored]
    assert stored.body == run(0) and stored.window_id == w.id
    store.close()
