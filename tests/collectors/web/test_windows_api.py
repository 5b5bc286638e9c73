"""Windows over HTTP: open, stop, list, result; clear 4xx for what cannot be done."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from conftest import Collector


@pytest.fixture
def http(collector: Collector) -> Iterator[httpx.Client]:
    """A client sending an engineer's bearer token."""
    with collector.http("engineer") as client:
        yield client


def test_window_lifecycle_and_errors(collector: Collector, http: httpx.Client) -> None:
    base = f"{collector.url}/api/v1/windows"
    w = http.post(
        base, json={"kind": "infrastructure", "start": "2026-01-01T00:00:00Z", "note": "hall 1"}
    ).json()
    assert w["state"] == "open" and w["start"] == "2026-01-01T00:00:00Z"
    r = http.get(f"{base}/{w['id']}").json()
    assert r["window"]["state"] == "open" and r["quality"]["valid"] is False
    assert any("still open" in i for i in r["quality"]["issues"])
    stopped = http.post(f"{base}/{w['id']}/stop", json={"end": "2026-01-01T01:00:00Z"})
    assert stopped.status_code == 200 and stopped.json()["end"] == "2026-01-01T01:00:00Z"
    r = http.get(f"{base}/{w['id']}").json()
    assert r["window"]["hours"] == 1.0 and r["window"]["state"] == "closed"
    assert r["pue"] is None and r["quality"]["valid"] is False  # no samples at all
    assert http.post(f"{base}/{w['id']}/stop").status_code == 409
    assert http.get(f"{base}/999").status_code == 404
    assert http.post(f"{base}/999/stop").status_code == 404
    assert http.post(base, json={"kind": "nonsense"}).status_code == 422
    general = http.post(base, json={"kind": "general"})
    assert general.status_code == 201
    # The site file has no [general] section: a result, marked not valid, saying so.
    g = http.get(f"{base}/{general.json()['id']}").json()
    assert g["quality"]["valid"] is False
    assert [x["id"] for x in http.get(base).json()] == [general.json()["id"], w["id"]]


def test_stop_before_start_is_refused(collector: Collector, http: httpx.Client) -> None:
    base = f"{collector.url}/api/v1/windows"
    w = http.post(base, json={"kind": "infrastructure", "start": "2026-01-01T00:00:00Z"}).json()
    r = http.post(f"{base}/{w['id']}/stop", json={"end": "2025-12-31T00:00:00Z"})
    assert r.status_code == 422
