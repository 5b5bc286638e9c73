"""The clause 4 verdict through a running collector: the result and both reports carry it."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import serve
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.evaluation.site import load_site
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.reporting.report_verdict import VERDICT_LABELS
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.api import create_app
from dcmeter.collectors.web.auth import create_token

T0 = 1_790_000_040.0  # 2026-09-21T14:14:00Z, on the minute
ENERGY = MetricSpec("energy_import_kwh", "kWh", "counter")
SOURCES = [
    SourceInfo("meter-total", "modbus", "127.0.0.1:1/1", {"point": "total", "kind": "meter"},
               0.005),
    SourceInfo("meter-it", "modbus", "127.0.0.1:2/1", {"point": "it_input", "kind": "meter"},
               0.005),
]
SITE = """
[site]
name = "verdict test hall"
region = "east-2023"

[energy]
total = ["meter-total"]
it = ["meter-it"]

[[equipment]]
category = "server"
model = "rack server R-1"
count = 400
standard = "GB 43630"
declared_grade = 1
certificate = "CQC-24-0001"
checked_by = "W. Zhang"
checked_on = 2026-09-01

[[equipment]]
category = "distribution"
model = "transformer T-1"
count = 2
standard = "GB 20052"
declared_grade = 2
label_filing = "CEL-20052-7"
checked_by = "W. Zhang"
checked_on = 2026-09-01
"""


@dataclass
class Running:
    """A collector evaluating SITE, with the engineer's token and agent-1's key."""

    url: str
    token: str
    key: Ed25519PrivateKey


@pytest.fixture
def running(tmp_path: Path, store_location: Callable[[str], Path | str]) -> Iterator[Running]:
    (tmp_path / "site.toml").write_text(SITE)
    store = Store(store_location("collector"))
    key = Ed25519PrivateKey.generate()
    app = create_app(store, Ingest(store, {"agent-1": key.public_key()}, 1 << 20),
                     load_site(tmp_path / "site.toml"))
    token = create_token(store, "engineer")[1]
    try:
        with serve(app) as url:
            yield Running(url, token, key)
    finally:
        store.close()


def post_meters(r: Running) -> None:
    """Post 70 minutes of counters, 10 minutes a batch: total 115 kW, IT 100 kW (PUE 1.15)."""
    prev = GENESIS
    for seq in range(1, 8):
        rows = []
        for minute in range((seq - 1) * 10, seq * 10):
            ts = int((T0 + 60 * minute) * 1e9)
            rows += [(ts, 0, 0, 5000 + 115 * minute / 60), (ts, 1, 0, 3000 + 100 * minute / 60)]
        arrays = wire.pack_arrays(*zip(*rows, strict=True))  # type: ignore[arg-type]
        batch = Batch("agent-1", seq, prev, int((T0 + 600 * seq) * 1e9),
                      ClockStatus(synced=True, max_error_s=0.01), SOURCES,
                      [MetricEntry(ENERGY)], *arrays)
        body = wire.encode_body(batch)
        prev = wire.batch_hash(body)
        got = httpx.post(f"{r.url}/api/v1/batches", content=wire.envelope(body, r.key),
                         headers={"content-type": "application/x-msgpack"})
        assert got.status_code == 200, got.text


def test_a_closed_window_carries_the_verdict_and_its_register(running: Running) -> None:
    post_meters(running)
    auth = {"Authorization": f"Bearer {running.token}"}
    with httpx.Client(base_url=running.url, headers=auth, timeout=60) as http:
        w = http.post("/api/v1/windows", json={"kind": "infrastructure",
                                               "start": rfc3339(T0 + 300)}).json()
        stop = http.post(f"/api/v1/windows/{w['id']}/stop", json={"end": rfc3339(T0 + 3900)})
        assert stop.status_code == 200, stop.text
        result = http.get(f"/api/v1/windows/{w['id']}").json()
        pages = {lang: http.get(f"/api/v1/windows/{w['id']}/report",
                                params={"lang": lang, "format": "html"}).text
                 for lang in ("en", "zh")}
    # E_total = 115 kWh/h x 1 h, E_IT = 100: PUE 1.15, level 1; the server item (5.2, shall)
    # is met with a checked certificate, the transformer (5.3, should) declares grade 2.
    assert result["pue"] == pytest.approx(1.15, rel=1e-9) and result["pue_level"] == 1
    assert result["quality"]["valid"], result["quality"]["issues"]
    v = result["verdict"]
    assert (v["category"], v["indicative"]) == ("advanced", False)
    assert (v["clause5"]["status"], v["clause5"]["should"]["status"]) == ("met", "not met")
    assert v["clause5"]["should"]["items"][0]["reason"] == (
        "declared grade 2; clause 5.3 asks GB 20052 grade 1")
    for lang, html in pages.items():
        L = VERDICT_LABELS[lang]
        top = html.index(L["verdict"])
        assert top < html.index('id="site"')  # the verdict comes first
        assert f">{L['advanced']}<" in html and L["indicative"] not in html
        assert "rack server R-1" in html and "CEL-20052-7" in html
