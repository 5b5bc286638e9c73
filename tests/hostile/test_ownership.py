"""Source ownership against a hostile agent: a real collector on a socket, two enrolled
agents with their own real keys, real HTTP.

Site: meter-total (rack-a) and meter-it (rack-b), kWh counters read each minute. Over the
window [T0, T0 + 1 h] the total meter rises 125 kWh and the IT meter 100 kWh, so by
T/CECA-G 0355—2025 §4.2.1 / GB 40879 PUE = E_total / E_IT = 125 / 100 = 1.25 exactly.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import SITE_TOML, serve
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.evaluation.site import load_site
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.storage.series_table import SeriesLimits
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.api import create_app
from dcmeter.collectors.web.auth import create_token

CT = {"content-type": "application/x-msgpack"}
T0 = 1_780_000_000 * 10**9
MIN = 60 * 10**9
KWH = MetricEntry(MetricSpec("energy_import_kwh", "kWh", "counter"))
TOTAL = SourceInfo("meter-total", "modbus", "10.0.0.1:502/1", {"point": "total"}, 0.005)
IT = SourceInfo("meter-it", "modbus", "10.0.0.2:502/1", {"point": "it_pdu"}, 0.005)


@dataclass
class Site:
    """A collector with agents rack-a and rack-b enrolled."""

    url: str
    store: Store
    keys: dict[str, Ed25519PrivateKey]
    tokens: dict[str, str]
    seq: dict[str, int]
    prev: dict[str, bytes]

    def post(self, agent: str, src: SourceInfo, kwh_per_h: float, *, sealed_ns: int = 0,
             minutes: range = range(-1, 62), labels: list[dict[str, str]] | None = None,
             key: Ed25519PrivateKey | None = None) -> httpx.Response:
        """Sign and post one batch of `agent`: `src`'s counter at each minute of `minutes`
        (kWh = kwh_per_h × hours since T0), one metric entry per `labels` (default one)."""
        metrics = [MetricEntry(KWH.spec, lab) for lab in (labels or [{}])]
        ts, s, m, v = [], [], [], []
        for j in range(len(metrics)):
            for i in minutes:
                ts.append(T0 + i * MIN)
                s.append(0)
                m.append(j)
                v.append(1000.0 + kwh_per_h * i / 60)
        seq = self.seq[agent] + 1
        batch = Batch(agent, seq, self.prev[agent], sealed_ns or T0 + 62 * MIN,
                      ClockStatus(True, 0.01), [src], metrics, *wire.pack_arrays(ts, s, m, v))
        body = wire.encode_body(batch)
        r = httpx.post(f"{self.url}/api/v1/batches", headers=CT,
                       content=wire.envelope(body, key or self.keys[agent]))
        if r.status_code == 200 and r.json()["status"] == "stored":
            self.seq[agent], self.prev[agent] = seq, wire.batch_hash(body)
        return r

    def http(self, role: str = "engineer") -> httpx.Client:
        return httpx.Client(base_url=self.url,
                            headers={"Authorization": f"Bearer {self.tokens[role]}"})

    def window(self) -> dict[str, object]:
        """Open and close the hour's infrastructure window; its result."""
        with self.http() as c:
            w = c.post("/api/v1/windows", json={"kind": "infrastructure",
                                                "start": rfc3339(T0 / 1e9)}).json()
            c.post(f"/api/v1/windows/{w['id']}/stop", json={"end": rfc3339(T0 / 1e9 + 3600)})
            result: dict[str, object] = c.get(f"/api/v1/windows/{w['id']}").json()
        return result


def _site(tmp_path: Path, sources: dict[str, list[str]] | None = None,
          limits: SeriesLimits | None = None) -> Iterator[Site]:
    (tmp_path / "site.toml").write_text(SITE_TOML)
    store = Store(tmp_path / "collector.sqlite", limits=limits)
    keys = {a: Ed25519PrivateKey.generate() for a in ("rack-a", "rack-b")}
    ingest = Ingest(store, {a: k.public_key() for a, k in keys.items()}, max_bytes=1 << 20)
    if sources is not None:
        store.bind_sources(sources, T0)
    app = create_app(store, ingest, load_site(tmp_path / "site.toml"),
                     clock=lambda: T0 + 2 * 3600 * 10**9)
    tokens = {role: create_token(store, role)[1] for role in ("engineer", "reader")}
    try:
        with serve(app) as url:
            yield Site(url, store, keys, tokens, {a: 0 for a in keys},
                       {a: GENESIS for a in keys})
    finally:
        store.close()


@pytest.fixture
def site(tmp_path: Path) -> Iterator[Site]:
    yield from _site(tmp_path)


def _deliver_honestly(site: Site) -> None:
    assert site.post("rack-a", TOTAL, 125.0).json()["status"] == "stored"
    assert site.post("rack-b", IT, 100.0).json()["status"] == "stored"


def test_another_agent_cannot_rewrite_a_closed_window(site: Site) -> None:
    """Finding (critical): rack-a, with its own valid key, sent a meter-it series (rack-b's)
    sealed at 1 ns and moved the closed window's PUE from 1.25 to 1.124."""
    _deliver_honestly(site)
    before = site.window()
    assert before["pue"] == pytest.approx(1.25, abs=1e-9)
    r = site.post("rack-a", IT, 111.2, sealed_ns=1)  # 125 / 111.2 = 1.124
    assert r.status_code == 403 and r.json()["reason"] == "source_owned"
    assert "rack-b" in r.json()["detail"]
    after = site.window()
    assert after["pue"] == pytest.approx(1.25, abs=1e-9)
    assert site.store.counts()["batches"] == 2  # nothing of the forged batch was kept


def test_a_source_seized_first_is_moved_by_an_engineer_and_the_owner_then_lands(
    site: Site
) -> None:
    """rack-a delivers meter-it before rack-b ever did: bound to rack-a on first delivery,
    so rack-b is refused (and keeps its batch) until an engineer moves the source."""
    assert site.post("rack-a", IT, 111.2).json()["status"] == "stored"
    assert site.post("rack-a", TOTAL, 125.0).json()["status"] == "stored"
    refused = site.post("rack-b", IT, 100.0)
    assert refused.status_code == 403 and refused.json()["reason"] == "source_owned"
    with site.http("reader") as c:
        listed = {s["source"]: s for s in c.get("/api/v1/sources").json()}
        assert listed["meter-it"]["owner"] == "rack-a"
        assert listed["meter-it"]["confirmed"] is False
        assert c.post("/api/v1/sources/meter-it/owner",
                      json={"agent": "rack-b", "reason": "x"}).status_code == 403
    with site.http() as c:
        r = c.post("/api/v1/sources/meter-it/owner", json={
            "agent": "rack-b", "from": "2000-01-01T00:00:00Z",
            "reason": "meter-it is wired to rack-b's gateway (ticket 42)"})
        assert r.status_code == 200, r.text
        moved = r.json()
    assert moved["owner"] == "rack-b" and moved["confirmed"] is True
    assert [h["agent"] for h in moved["history"]] == ["rack-a", "rack-b"]
    assert moved["history"][1]["by"] == "engineer-1"
    assert site.post("rack-b", IT, 100.0).json()["status"] == "stored"
    result = site.window()
    assert result["pue"] == pytest.approx(1.25, abs=1e-9)  # rack-a's 111.2 kWh ignored
    owners = result["quality"]["owners"]["meter-it"]  # type: ignore[index]
    assert [o["agent"] for o in owners] == ["rack-b"]


def test_unconfirmed_bindings_are_shown_until_an_engineer_confirms(site: Site) -> None:
    _deliver_honestly(site)
    owners = site.window()["quality"]["owners"]  # type: ignore[index]
    assert owners["meter-it"] == [{"agent": "rack-b", "via": "first_delivery",
                                   "confirmed": False, "from": None, "until": None}]
    with site.http() as c:
        for src, agent in (("meter-it", "rack-b"), ("meter-total", "rack-a")):
            r = c.post(f"/api/v1/sources/{src}/owner", json={"agent": agent, "reason": "ok"})
            assert r.status_code == 200 and r.json()["via"] == "confirmed"
        bad = c.post("/api/v1/sources/meter-it/owner", json={"agent": "nobody", "reason": "x"})
        assert bad.status_code == 422 and "not enrolled" in bad.text
    result = site.window()
    owners = result["quality"]["owners"]  # type: ignore[index]
    assert all(o[0]["confirmed"] and o[0]["via"] == "confirmed" for o in owners.values())
    assert result["quality"]["valid"] is True  # type: ignore[index]


def test_an_agent_with_listed_sources_reports_only_those(tmp_path: Path) -> None:
    for s in _site(tmp_path, sources={"rack-a": ["meter-total"], "rack-b": ["meter-it"]}):
        r = s.post("rack-a", SourceInfo("meter-x", "modbus", "x", {}), 1.0)
        assert r.status_code == 403 and r.json()["reason"] == "source_not_allowed"
        assert s.post("rack-b", TOTAL, 1.0).json()["reason"] in ("source_not_allowed",
                                                                  "source_owned")
        _deliver_honestly(s)
        with s.http() as c:
            assert all(x["via"] == "enrolment" for x in c.get("/api/v1/sources").json())
        assert s.window()["pue"] == pytest.approx(1.25, abs=1e-9)


def test_reconfiguring_an_instrument_keeps_one_series(site: Site) -> None:
    """Finding: changing a meter's address or accuracy made a new series, and the old empty
    one made every later window invalid."""
    assert site.post("rack-a", TOTAL, 125.0, minutes=range(-1, 30)).json()["status"] == "stored"
    moved = SourceInfo("meter-total", "modbus", "10.0.9.9:502/7", {"point": "total"}, 0.002)
    assert site.post("rack-a", moved, 125.0, minutes=range(30, 62)).json()["status"] == "stored"
    assert site.post("rack-b", IT, 100.0).json()["status"] == "stored"
    result = site.window()
    assert result["pue"] == pytest.approx(1.25, abs=1e-9)
    assert result["quality"]["valid"] is True, result["quality"]["issues"]  # type: ignore[index]
    changes = result["quality"]["source_changes"]  # type: ignore[index]
    assert len(changes) == 1 and changes[0]["changed"] == {
        "address": ["10.0.0.1:502/1", "10.0.9.9:502/7"], "accuracy": [0.005, 0.002]}
    with site.store._lock:
        n = site.store._db.execute(
            "SELECT COUNT(*) FROM series WHERE source = 'meter-total'").fetchone()[0]
    assert n == 1


def test_series_caps_refuse_a_flood_of_junk_series(tmp_path: Path) -> None:
    """Finding: 10,000 junk series made one window read 43 s."""
    for s in _site(tmp_path, limits=SeriesLimits(per_agent=20, per_source=8)):
        junk = [{"port": str(i)} for i in range(9)]
        r = s.post("rack-a", TOTAL, 1.0, labels=junk, minutes=range(2))
        assert r.status_code == 422 and r.json()["reason"] == "series_limit"
        assert "max_series_per_source = 8" in r.json()["detail"]
        assert s.store.counts()["samples"] == 0
        assert s.post("rack-a", TOTAL, 1.0, labels=junk[:8], minutes=range(2)).status_code == 200
        many = [SourceInfo(f"m{i}", "modbus", "x", {}) for i in range(3)]
        codes = [s.post("rack-a", src, 1.0, labels=junk[:5], minutes=range(2)).status_code
                 for src in many]
        assert codes == [200, 200, 422]  # 8 + 5 + 5 = 18 <= 20; + 5 = 23 > 20
