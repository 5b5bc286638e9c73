"""Integers and times too large for the store's 64-bit columns, sent to a real collector.

Every such value is refused with a 404 or a 422 that names the bound, never a 500 (an
OverflowError from the database driver) and never stored.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from conftest import Collector

INT64_MAX = 2**63 - 1
HUGE = (10**23, 2**63)  # the finding's id, and the first integer past a signed 64-bit one
RUN = {"start": "2026-03-01T00:05:00Z", "end": "2026-03-01T00:10:00Z", "phase": "infer",
       "model": "resnet-50", "repetition": 1, "samples": 50000.0, "exit_status": 0}


def refused(r: httpx.Response, *words: str) -> dict[str, Any]:
    """Assert `r` is a 404 or 422 whose detail holds each of `words`; return its body."""
    assert r.status_code in (404, 422), f"{r.request.method} {r.request.url}: {r.status_code}"
    body: dict[str, Any] = r.json()
    detail = str(body["detail"])
    for word in words:
        assert word in detail, f"{word!r} not in {detail!r}"
    return body


def ai_window(c: httpx.Client, url: str) -> int:
    """Open an AI window from 2026-03-01T00:00:00Z and return its id."""
    r = c.post(f"{url}/api/v1/windows", json={"kind": "ai", "start": "2026-03-01T00:00:00Z"})
    assert r.status_code == 201, r.text
    return int(r.json()["id"])


@pytest.mark.parametrize("wid", HUGE, ids=["1e23", "2^63"])
def test_a_huge_window_id_is_refused_on_every_route(collector: Collector, wid: int) -> None:
    base = f"{collector.url}/api/v1/windows/{wid}"
    with collector.http() as c:
        for r in (c.get(base), c.post(f"{base}/stop"), c.get(f"{base}/report"),
                  c.get(f"{base}/report", params={"format": "json"}), c.get(f"{base}/runs"),
                  c.post(f"{base}/runs", json=RUN)):
            refused(r, str(INT64_MAX))
        r = c.get(f"{collector.url}/api/v1/windows/{INT64_MAX}")  # the largest id: just absent
        refused(r, f"no window {INT64_MAX}")
        assert c.get(f"{collector.url}/api/v1/windows").json() == []


def test_a_huge_run_repetition_is_refused(collector: Collector) -> None:
    with collector.http() as c:
        wid = ai_window(c, collector.url)
        for rep in HUGE:
            r = c.post(f"{collector.url}/api/v1/windows/{wid}/runs",
                       json={**RUN, "repetition": rep})
            refused(r, "repetition", str(INT64_MAX))
        r = c.post(f"{collector.url}/api/v1/windows/{wid}/runs",
                   json={**RUN, "repetition": INT64_MAX})
        assert r.status_code == 201, r.text  # the largest one fits
        assert [x["repetition"] for x in c.get(
            f"{collector.url}/api/v1/windows/{wid}/runs").json()] == [INT64_MAX]


def test_a_huge_run_exit_status_is_refused(collector: Collector) -> None:
    with collector.http() as c:
        wid = ai_window(c, collector.url)
        for status in (10**23, -(2**63) - 1):
            r = c.post(f"{collector.url}/api/v1/windows/{wid}/runs",
                       json={**RUN, "exit_status": status})
            refused(r, "exit_status")
        assert c.get(f"{collector.url}/api/v1/windows/{wid}/runs").json() == []


def test_a_time_beyond_2262_is_refused(collector: Collector) -> None:
    # Times are stored as int64 nanoseconds since 1970: the last one is 2262-04-11T23:47:16Z.
    far = "9999-01-01T00:00:00Z"
    with collector.http() as c:
        r = c.post(f"{collector.url}/api/v1/windows", json={"kind": "ai", "start": far})
        refused(r, "start", "2262")
        assert c.get(f"{collector.url}/api/v1/windows").json() == []

        wid = ai_window(c, collector.url)
        r = c.post(f"{collector.url}/api/v1/windows/{wid}/runs", json={**RUN, "end": far})
        refused(r, "end", "2262")
        assert c.get(f"{collector.url}/api/v1/windows/{wid}/runs").json() == []
        r = c.post(f"{collector.url}/api/v1/windows/{wid}/stop", json={"end": far})
        refused(r, "end", "2262")
        assert c.get(f"{collector.url}/api/v1/windows/{wid}").status_code == 200
        assert c.get(f"{collector.url}/api/v1/windows", params={"until": far}).status_code == 200
