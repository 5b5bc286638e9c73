"""Windows over HTTP: open, stop, list, result; clear 4xx for what cannot be done."""

from __future__ import annotations

import httpx
from conftest import Collector


def test_window_lifecycle_and_errors(collector: Collector) -> None:
    base = f"{collector.url}/api/v1/windows"
    w = httpx.post(
        base, json={"kind": "infrastructure", "start": "2026-01-01T00:00:00Z", "note": "hall 1"}
    ).json()
    assert w["state"] == "open" and w["start"] == "2026-01-01T00:00:00Z"
    r = httpx.get(f"{base}/{w['id']}").json()
    assert r["window"]["state"] == "open" and r["quality"]["valid"] is False
    assert any("still open" in i for i in r["quality"]["issues"])
    stopped = httpx.post(f"{base}/{w['id']}/stop", json={"end": "2026-01-01T01:00:00Z"})
    assert stopped.status_code == 200 and stopped.json()["end"] == "2026-01-01T01:00:00Z"
    r = httpx.get(f"{base}/{w['id']}").json()
    assert r["window"]["hours"] == 1.0 and r["window"]["state"] == "closed"
    assert r["pue"] is None and r["quality"]["valid"] is False  # no samples at all
    assert httpx.post(f"{base}/{w['id']}/stop").status_code == 409
    assert httpx.get(f"{base}/999").status_code == 404
    assert httpx.post(f"{base}/999/stop").status_code == 404
    assert httpx.post(base, json={"kind": "nonsense"}).status_code == 422
    general = httpx.post(base, json={"kind": "general"})
    assert general.status_code == 201
    # The site file has no [general] section: a result, marked not valid, saying so.
    g = httpx.get(f"{base}/{general.json()['id']}").json()
    assert g["quality"]["valid"] is False
    assert [x["id"] for x in httpx.get(base).json()] == [general.json()["id"], w["id"]]


def test_stop_before_start_is_refused(collector: Collector) -> None:
    base = f"{collector.url}/api/v1/windows"
    w = httpx.post(base, json={"kind": "infrastructure", "start": "2026-01-01T00:00:00Z"}).json()
    r = httpx.post(f"{base}/{w['id']}/stop", json={"end": "2025-12-31T00:00:00Z"})
    assert r.status_code == 422
