"""The field console over HTTP against a real collector: sign-in, CSRF, roles, start and stop,
the live fragment and chart series, both languages, and every asset served by the collector."""

from __future__ import annotations

import hashlib
import re
import time
from collections.abc import Iterator
from contextlib import closing
from html.parser import HTMLParser
from pathlib import Path

import httpx
import pytest
from conftest import Collector

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry

ROOT = Path(__file__).resolve().parents[3]
SOURCES = [
    SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"}),
    SourceInfo("meter-it", "modbus", "127.0.0.1:502/2", {"point": "it_pdu"}),
]
METRICS = [MetricEntry(MetricSpec("energy_import_kwh", "kWh", "counter"))]
STEP_S = 4  # the agent's interval: stale after 3 × 4 = 12 s without a batch
TOTAL_KW, IT_KW = 200.0, 100.0  # constant: PUE 200 / 100 = 2.000


class Tags(HTMLParser):
    """Every start tag of a page, as (tag, attributes)."""

    def __init__(self, text: str) -> None:
        super().__init__()
        self.tags: list[tuple[str, dict[str, str | None]]] = []
        self.feed(text)

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))

    def by_id(self, ident: str) -> dict[str, str | None] | None:
        return next((a for _, a in self.tags if a.get("id") == ident), None)

    def urls(self) -> list[str]:
        return [v for _, a in self.tags for k, v in a.items()
                if k in ("src", "href", "action", "hx-get", "data-series-url") and v]


def csrf(page: str) -> str:
    m = re.search(r'name="csrf_token" value="([^"]+)"', page)
    assert m, "no CSRF token in the page"
    return m.group(1)


def sign_in(c: Collector, role: str) -> httpx.Client:
    """A browser-like client (cookies kept, redirects not followed) signed in as `role`."""
    client = httpx.Client(base_url=c.url)
    r = client.post("/login", data={"token": c.tokens[role]})
    assert r.status_code == 303 and r.headers["location"] == "/", r.text
    return client


@pytest.fixture
def engineer(collector: Collector) -> Iterator[httpx.Client]:
    with closing(sign_in(collector, "engineer")) as client:
        yield client


def post_batches(c: Collector, t0: float, t1: float, seq: int = 1,
                 prev: bytes = GENESIS) -> tuple[int, bytes]:
    """agent-1's meters read every STEP_S s in [t0, t1], one batch per tick (as the agent
    seals them), counters at TOTAL_KW and IT_KW; return the next seq and previous hash."""
    t = t0
    while t <= t1:
        e_total = 5000.0 + TOTAL_KW * (t - t0) / 3600
        e_it = 3000.0 + IT_KW * (t - t0) / 3600
        ns = int(t * 1e9)
        b = Batch("agent-1", seq, prev, ns + 1, ClockStatus(synced=True), SOURCES, METRICS,
                  *wire.pack_arrays([ns, ns], [0, 1], [0, 0], [e_total, e_it]))
        r = httpx.post(f"{c.url}/api/v1/batches", content=wire.seal(b, c.keys["agent-1"]),
                       headers={"content-type": "application/x-msgpack"})
        assert r.status_code == 200, r.text
        prev, seq, t = wire.batch_hash(wire.encode_body(b)), seq + 1, t + STEP_S
    return seq, prev


def test_sign_in_gives_a_session_cookie_never_the_token(collector: Collector) -> None:
    with httpx.Client(base_url=collector.url) as client:
        r = client.get("/")
        assert r.status_code == 303 and r.headers["location"] == "/login"
        page = client.get("/login")
        tags = Tags(page.text)
        form = tags.by_id("login")
        assert form and form["method"] == "post" and form["action"] == "/login"
        assert ("input", {"id": "token", "name": "token", "type": "password",
                          "autocomplete": "current-password", "required": None,
                          "placeholder": "dcm_…", "aria-describedby": "token-hint"}) in tags.tags
        assert tags.by_id("login-submit") is not None and tags.by_id("login-error") is None
        r = client.post("/login", data={"token": collector.tokens["engineer"]})
        assert r.status_code == 303 and r.headers["location"] == "/"
        cookie = r.headers["set-cookie"]
        parts = {p.strip().split("=")[0].lower() for p in cookie.split(";")}
        assert cookie.startswith("dcmeter_session=")
        assert {"httponly", "path", "samesite"} <= parts and "secure" not in parts
        assert "samesite=strict" in cookie.lower() and "path=/" in cookie.lower()
        assert collector.tokens["engineer"] not in cookie
        home = client.get("/")
        assert home.status_code == 200 and 'id="windows"' in home.text
        assert Tags(home.text).by_id("logout") is not None
        assert collector.tokens["engineer"] not in home.text
        # The cookie is not a bearer token: the API still wants one.
        assert client.get("/api/v1/windows").status_code == 401
        # Sign out (with the CSRF token): the session is gone.
        r = client.post("/logout", data={"csrf_token": csrf(home.text)})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert client.get("/").status_code == 303


def test_a_bad_token_is_401_with_the_form_again(collector: Collector) -> None:
    with httpx.Client(base_url=collector.url) as client:
        r = client.post("/login", data={"token": "dcm_not-a-token"})
        assert r.status_code == 401 and "set-cookie" not in r.headers
        tags = Tags(r.text)
        assert tags.by_id("login-error") is not None and tags.by_id("login") is not None
        assert client.get("/").status_code == 303


def test_a_revoked_token_ends_its_sessions(collector: Collector,
                                           engineer: httpx.Client) -> None:
    assert engineer.get("/").status_code == 200
    name = next(t.name for t in collector.store.tokens() if t.role == "engineer")
    assert collector.store.revoke_token(name)
    assert engineer.get("/").status_code == 303


def test_a_post_without_or_with_a_wrong_csrf_token_is_403_and_changes_nothing(
    collector: Collector, engineer: httpx.Client,
) -> None:
    home = engineer.get("/").text
    good = csrf(home)
    for data in ({"kind": "infrastructure"},
                 # one character changed (a random token may begin with any of them)
                 {"kind": "infrastructure", "csrf_token": ("y" if good[0] == "x" else "x")
                  + good[1:]},
                 {"kind": "infrastructure", "csrf_token": ""}):
        r = engineer.post("/windows", data=data)
        assert r.status_code == 403, data
    assert collector.store.windows() == []
    with collector.http("engineer") as api:
        wid = api.post(f"{collector.url}/api/v1/windows", json={"kind": "infrastructure"}
                       ).json()["id"]
    assert engineer.post(f"/windows/{wid}/stop", data={}).status_code == 403
    assert engineer.post(f"/windows/{wid}/stop", data={"csrf_token": "nope"}).status_code == 403
    still = collector.store.window(wid)
    assert still is not None and still.end_ns is None
    assert engineer.post("/logout", data={}).status_code == 403
    assert engineer.get("/").status_code == 200  # still signed in
    # Another session's token is not this one's.
    with closing(sign_in(collector, "engineer")) as other:
        assert other.post("/windows", data={"kind": "ai", "csrf_token": good}).status_code == 403
    assert [w.id for w in collector.store.windows()] == [wid]


def test_a_reader_sees_no_buttons_and_is_refused(collector: Collector) -> None:
    with collector.http("engineer") as api:
        wid = api.post(f"{collector.url}/api/v1/windows", json={"kind": "infrastructure"}
                       ).json()["id"]
    with closing(sign_in(collector, "reader")) as reader:
        home = reader.get("/").text
        tags = Tags(home)
        assert tags.by_id("start-window") is None and tags.by_id("logout") is not None
        assert f'data-window-id="{wid}"' in home
        page = reader.get(f"/windows/{wid}").text
        assert Tags(page).by_id("stop-window") is None and Tags(page).by_id("live")
        token = csrf(page)  # the sign-out form's: valid, but the role is too weak
        r = reader.post("/windows", data={"kind": "infrastructure", "csrf_token": token})
        assert r.status_code == 403
        r = reader.post(f"/windows/{wid}/stop", data={"csrf_token": token})
        assert r.status_code == 403
    assert [w.id for w in collector.store.windows()] == [wid]
    still = collector.store.window(wid)
    assert still is not None and still.end_ns is None


def test_engineer_starts_and_stops_a_window(collector: Collector,
                                            engineer: httpx.Client) -> None:
    home = engineer.get("/").text
    assert Tags(home).by_id("start-window") is not None
    r = engineer.post("/windows", data={"kind": "infrastructure", "note": "hall 1 <24 h>",
                                        "scope": "", "csrf_token": csrf(home)})
    assert r.status_code == 303
    (w,) = collector.store.windows()
    assert r.headers["location"] == f"/windows/{w.id}"
    engineer_name = next(t.name for t in collector.store.tokens() if t.role == "engineer")
    assert (w.kind, w.note, w.opened_by, w.end_ns) == ("infrastructure", "hall 1 <24 h>",
                                                        engineer_name, None)
    page = engineer.get(f"/windows/{w.id}")
    assert page.status_code == 200
    assert "hall 1 &lt;24 h&gt;" in page.text and "hall 1 <24 h>" not in page.text
    tags = Tags(page.text)
    for ident in ("elapsed", "energy-total", "energy-it", "pue", "validity", "reasons",
                  "agents", "sources", "chart", "stop-window", "stop-submit",
                  "dl-html-en", "dl-html-zh", "dl-pdf-en", "dl-pdf-zh", "dl-json"):
        assert tags.by_id(ident) is not None, ident
    assert re.search(r'id="elapsed">\d+:\d\d:\d\d<', page.text)
    r = engineer.post(f"/windows/{w.id}/stop", data={"csrf_token": csrf(page.text)})
    assert r.status_code == 303 and r.headers["location"] == f"/windows/{w.id}"
    closed = collector.store.window(w.id)
    assert closed is not None and closed.end_ns is not None
    assert closed.closed_by == engineer_name
    after = engineer.get(f"/windows/{w.id}").text
    assert Tags(after).by_id("stop-window") is None
    assert 'hx-trigger' not in after  # a closed window's page no longer polls
    listed = engineer.get("/?state=closed").text
    assert f'data-window-id="{w.id}"' in listed
    assert f'data-window-id="{w.id}"' not in engineer.get("/?state=open").text
    # The reports and the result download with the session cookie.
    j = engineer.get(f"/windows/{w.id}/result.json")
    assert j.status_code == 200 and j.json()["window"]["id"] == w.id
    assert j.json()["revision"]["number"] == 1
    for lang in ("en", "zh"):
        h = engineer.get(f"/windows/{w.id}/report", params={"lang": lang, "format": "html"})
        assert h.status_code == 200 and h.headers["content-type"].startswith("text/html")
        assert f'<html lang="{lang}' in h.text


def test_the_pdf_report_downloads(collector: Collector, engineer: httpx.Client) -> None:
    with collector.http("engineer") as api:
        wid = api.post(f"{collector.url}/api/v1/windows", json={"kind": "infrastructure"}
                       ).json()["id"]
    r = engineer.get(f"/windows/{wid}/report", params={"lang": "zh", "format": "pdf"},
                     timeout=180)
    assert r.status_code == 200 and r.headers["content-type"] == "application/pdf"
    assert r.content.startswith(b"%PDF-")


def test_live_fragment_series_and_a_stale_agent(collector: Collector,
                                                 engineer: httpx.Client) -> None:
    now = time.time()
    start = now - 120
    seq, prev = post_batches(collector, now - 200, now)
    with collector.http("engineer") as api:
        wid = api.post(f"{collector.url}/api/v1/windows", json={
            "kind": "infrastructure",
            "start": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(start))}).json()["id"]
    r = engineer.get(f"/windows/{wid}/live")
    assert r.status_code == 200
    tags = Tags(r.text)
    live = tags.by_id("live")
    assert live is not None and live["hx-get"] == f"/windows/{wid}/live"
    assert live["hx-trigger"] == "every 5s"
    assert abs(int(live["data-updated"] or 0) - time.time()) < 60
    # Constant 200 kW and 100 kW: PUE 2.000 whatever the span.
    assert re.search(r'id="pue">2\.000<', r.text), r.text
    row = re.search(r'<tr data-agent="agent-1"([^>]*)>.*?class="last-batch">(\d+) s ago<'
                    r'.*?class="chain">([^<]*)<', r.text, re.S)
    assert row, r.text
    assert 'class="stale"' not in row.group(1) and int(row.group(2)) < 12 and row.group(3) == "ok"
    for src in ("meter-total", "meter-it"):
        m = re.search(rf'<tr data-source="{src}"[^>]*class="ok">.*?class="coverage">'
                      r'([\d.]+) %<', r.text, re.S)
        assert m and float(m.group(1)) > 90, r.text
    assert "5000" in r.text or "kWh" in r.text  # the meters' last values, in kWh
    s = engineer.get(f"/windows/{wid}/series.json").json()
    assert set(s) == {"updated", "t", "total_kw", "it_kw", "pue"}
    assert len(s["t"]) == len(s["total_kw"]) == len(s["it_kw"]) == len(s["pue"]) > 0
    # Every sub-interval but the last, which runs on past the newest sample to now, at the
    # constant 200 kW and PUE 2.
    assert all(v is None or abs(v - TOTAL_KW) < 1e-6 for v in s["total_kw"][:-1]), s
    assert any(v is not None for v in s["total_kw"])
    assert all(v is None or abs(v - 2.0) < 1e-6 for v in s["pue"][:-1]), s
    # No batch for longer than 3 × 4 s: the agent's row is stale; a new batch: fresh again.
    deadline = time.monotonic() + 60
    while True:
        text = engineer.get(f"/windows/{wid}/live").text
        if re.search(r'<tr data-agent="agent-1" class="stale"', text):
            break
        assert time.monotonic() < deadline, text
        time.sleep(1)
    post_batches(collector, time.time(), time.time(), seq, prev)
    text = engineer.get(f"/windows/{wid}/live").text
    assert re.search(r'<tr data-agent="agent-1" data-stale-after', text), text
    # Without a session: 401, no figures.
    assert httpx.get(f"{collector.url}/windows/{wid}/live").status_code == 401
    assert httpx.get(f"{collector.url}/windows/{wid}/series.json").status_code == 401


def test_both_languages_and_the_choice_is_remembered(collector: Collector,
                                                     engineer: httpx.Client) -> None:
    assert '<html lang="en">' in engineer.get("/").text
    r = engineer.get("/lang", params={"to": "zh", "back": "/?state=open"})
    assert r.status_code == 303 and r.headers["location"] == "/?state=open"
    assert "dcmeter_lang=zh" in r.headers["set-cookie"]
    zh = engineer.get("/").text
    assert '<html lang="zh">' in zh and "测量窗口" in zh and "退出" in zh
    assert "控制台" in engineer.get("/login").text
    engineer.get("/lang", params={"to": "en"})
    assert '<html lang="en">' in engineer.get("/").text
    # Never a redirect to another site.
    for back in ("//example.com/", "https://example.com/", "x"):
        assert engineer.get("/lang", params={"to": "en", "back": back}
                            ).headers["location"] == "/"
    # Without the cookie, the browser's first language.
    with httpx.Client(base_url=collector.url, headers={"accept-language": "zh-CN,en;q=0.5"}
                      ) as fresh:
        assert '<html lang="zh">' in fresh.get("/login").text


def test_no_external_url_and_every_asset_is_served(collector: Collector,
                                                   engineer: httpx.Client) -> None:
    with collector.http("engineer") as api:
        wid = api.post(f"{collector.url}/api/v1/windows", json={"kind": "ai"}).json()["id"]
    pages = {p: engineer.get(p) for p in ("/", f"/windows/{wid}", f"/windows/{wid}/live")}
    pages["/login"] = httpx.get(f"{collector.url}/login")
    assets: set[str] = set()
    for path, r in pages.items():
        assert r.status_code == 200, path
        csp = r.headers["content-security-policy"]
        assert "script-src 'self'" in csp and "default-src 'none'" in csp
        assert "http://" not in r.text and "https://" not in r.text, path
        assert not re.search(r"<script(?![^>]*\ssrc=)[^>]*>", r.text), path  # no inline script
        assert " style=" not in r.text, path  # no inline style: style-src 'self'
        for url in Tags(r.text).urls():
            if url == "data:,":  # the empty favicon: no request for /favicon.ico
                continue
            assert url.startswith("/") and not url.startswith("//"), (path, url)
            if url.startswith("/console/assets/"):
                assets.add(url)
    assert {u.rsplit("/", 1)[1] for u in assets} == {
        "htmx.min.js", "uPlot.iife.min.js", "uPlot.min.css", "console.js", "console.css"}
    for url in assets:
        r = httpx.get(collector.url + url)  # no session needed
        assert r.status_code == 200 and len(r.content) > 100, url
        kind = "text/css" if url.endswith(".css") else "text/javascript"
        assert r.headers["content-type"].startswith(kind), url
        assert "immutable" in r.headers["cache-control"]
    assert httpx.get(f"{collector.url}{url.rsplit('/', 1)[0]}/../auth.py").status_code == 404
    assert 'id="runs"' in pages[f"/windows/{wid}"].text  # an AI window lists its runs
    assert 'id="aee"' in pages[f"/windows/{wid}"].text


def test_vendored_files_match_their_recorded_checksums() -> None:
    table = (ROOT / "docs" / "VENDORED.md").read_text()
    for folder, names in (("htmx", ("htmx.min.js", "LICENSE")),
                          ("uplot", ("uPlot.iife.min.js", "uPlot.min.css", "LICENSE"))):
        for name in names:
            data = (ROOT / "collectors" / "web" / "static" / folder / name).read_bytes()
            digest = hashlib.sha256(data).hexdigest()
            assert f"| {folder}/{name} | `{digest}` |" in table, (folder, name)


def test_the_chart_leaves_out_an_open_windows_filling_bucket() -> None:
    # Buckets at 0, 60 and 120 s; the window is open at 130 s: the 120 s bucket holds 10 s of
    # a 60 s bucket and would draw power falling to a sixth. Closed: every bucket is drawn.
    from dcmeter.collectors.web.console.live import chart_series
    series = {"total_kw": [(0, 120.0), (60, 120.0), (120, 20.0)],
              "it_kw": [(0, 100.0), (60, 100.0), (120, 16.7)],
              "pue": [(0, 1.2), (60, 1.2), (120, 1.198)]}
    live = chart_series(series, 130, still_open=True)
    assert live["t"] == [0.0, 60.0] and live["total_kw"] == [120.0, 120.0]
    assert live["pue"] == [1.2, 1.2]
    closed = chart_series(series, 130)
    assert closed["t"] == [0.0, 60.0, 120.0] and closed["it_kw"] == [100.0, 100.0, 16.7]


def test_a_source_is_failing_while_its_last_failure_is_newer_than_its_last_sample() -> None:
    from dcmeter.collectors.web.console.live import FailureRun, source_rows

    result = {"quality": {"sources": [
        {"source": "m-1", "metric": "power_w", "median_interval_s": 10.0, "coverage": 1.0},
        {"source": "m-2", "metric": "power_w", "median_interval_s": 10.0, "coverage": 1.0},
    ], "issues": ["total: m-1 power_w: coverage gap"]}}
    last = {("m-1", "power_w"): (995.0, 5.0, "W"), ("m-2", "power_w"): (995.0, 5.0, "W")}
    runs = {"m-1": FailureRun(990.0, 998.0, 3, "refused", None),  # failed after its sample
            "m-2": FailureRun(900.0, 950.0, 6, "timed out", 960.0),  # recovered at 960 s
            "m-3": FailureRun(3600.0, 3661.0, 7, "no route", None)}  # never answered
    rows = {r.source: r for r in source_rows(result, last, 1000.0, True, runs)}
    assert (rows["m-1"].status, rows["m-1"].failure, rows["m-1"].since) == (
        "failing", "refused", "00:16:30")
    assert (rows["m-2"].status, rows["m-2"].failure, rows["m-2"].recovered) == (
        "ok", "timed out", "00:16:00")
    assert (rows["m-3"].status, rows["m-3"].metric, rows["m-3"].since) == (
        "failing", "—", "01:00:00")
    # Without a recorded failure: the newest issue naming the source, as before.
    assert source_rows(result, last, 1000.0, True)[0].failure == "total: m-1 power_w: coverage gap"
