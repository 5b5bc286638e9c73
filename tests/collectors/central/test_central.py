"""The central against two real site collectors on sockets, one of them stopped midway."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import httpx
import pytest
import uvicorn
from conftest import ROOT, SITE_TOML, free_port, serve
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Request
from prometheus_client.parser import text_string_to_metric_families
from structlog.testing import capture_logs

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.central import central_config
from dcmeter.collectors.central.central_api import create_central_app
from dcmeter.collectors.central.central_pull import Outcome, pull_once
from dcmeter.collectors.central.central_store import CentralStore
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339
from dcmeter.collectors.evaluation.site import load_site
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.api import create_app
from dcmeter.collectors.web.auth import create_token

START, END = "2026-03-01T00:00:00Z", "2026-03-01T01:00:00Z"
T0 = parse_rfc3339(START)


@dataclass
class SiteCollector:
    """A site collector on a fixed loopback port that can be stopped and started again."""

    root: Path
    location: Path | str  # of the site's collector store
    port: int = field(default_factory=free_port)
    hits: list[str] = field(default_factory=list)
    server: uvicorn.Server | None = None
    thread: threading.Thread | None = None

    def __post_init__(self) -> None:
        self.root.mkdir(parents=True, exist_ok=True)
        (self.root / "site.toml").write_text(SITE_TOML)
        self.store = Store(self.location)
        self.key = Ed25519PrivateKey.generate()
        self.tokens = {r: create_token(self.store, r)[1] for r in ("engineer", "reader")}

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        """Serve a fresh app over the same store on the same port."""
        app = create_app(self.store, Ingest(self.store, {"agent-1": self.key.public_key()},
                                            1 << 20), load_site(self.root / "site.toml"))

        @app.middleware("http")
        async def count(request: Request, call_next: Any) -> Any:
            self.hits.append(request.url.path)
            return await call_next(request)

        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_config=None, access_log=False))
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            assert time.monotonic() < deadline, "site collector did not start"
            time.sleep(0.02)

    def stop(self) -> None:
        """Shut the server down (the store stays open for a restart)."""
        assert self.server is not None and self.thread is not None
        self.server.should_exit = True
        self.thread.join(10)
        self.server = None

    def http(self) -> httpx.Client:
        return httpx.Client(base_url=self.url,
                            headers={"Authorization": f"Bearer {self.tokens['engineer']}"})

    def feed(self) -> None:
        """Meter power every 60 s around [START, END]: total 150 kW, IT 100 kW."""
        sources = [SourceInfo("meter-total", "modbus", "127.0.0.1:502", {"point": "total"}),
                   SourceInfo("meter-it", "modbus", "127.0.0.1:502", {"point": "it_pdu"})]
        offsets = range(-300, 3901, 60)
        ts = [int((T0 + t) * 1e9) for t in offsets for _ in (0, 1)]
        src = [i for _ in offsets for i in (0, 1)]
        val = [w for _ in offsets for w in (150_000.0, 100_000.0)]
        batch = Batch("agent-1", 1, GENESIS, ts[-1], ClockStatus(synced=True), sources,
                      [MetricEntry(MetricSpec("power_w", "W"))],
                      *wire.pack_arrays(ts, src, [0] * len(ts), val))
        with self.http() as h:
            r = h.post("/api/v1/batches", content=wire.seal(batch, self.key),
                       headers={"content-type": "application/x-msgpack"})
        assert r.status_code == 200, r.text

    def open(self, note: str, end: str | None = None) -> int:
        """Open an infrastructure window from START (closed at `end` if given); its id."""
        with self.http() as h:
            r = h.post("/api/v1/windows", json={"kind": "infrastructure", "start": START,
                                                "note": note})
            wid = int(r.json()["id"])
            if end is not None:
                assert h.post(f"/api/v1/windows/{wid}/stop", json={"end": end}).is_success
        return wid

    def result(self, wid: int) -> dict[str, Any]:
        with self.http() as h:
            return cast(dict[str, Any], h.get(f"/api/v1/windows/{wid}").json())


@pytest.fixture
def sites(
    tmp_path: Path, store_location: Callable[[str], Path | str]
) -> Iterator[dict[str, SiteCollector]]:
    """Sites a and b, each fed with an hour of power, a closed and an open window."""
    out = {n: SiteCollector(tmp_path / n, store_location(n)) for n in ("a", "b")}
    try:
        for s in out.values():
            s.start()
            s.feed()
            s.open("closed hour", END)
            s.open("still open")
        yield out
    finally:
        for s in out.values():
            if s.server is not None:
                s.stop()
            s.store.close()


def write_config(tmp_path: Path, sites: dict[str, SiteCollector], store: Path | str,
                 tokens: dict[str, str] | None = None, extra: str = "") -> Path:
    """A central config pulling `sites` into `store` (a path or a URL), with each one's reader
    token (or `tokens`) in a file."""
    lines = ['[central]', f'store = "{store}"', "timeout_s = 5", extra]
    for name, s in sites.items():
        tf = tmp_path / f"token-{name}"
        tf.write_text((tokens or {}).get(name, s.tokens["reader"]) + "\n")
        lines += ["[[sites]]", f'name = "{name}"', f'url = "{s.url}"', f'token_file = "{tf}"']
    path = tmp_path / "central.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


def pull(store: CentralStore, path: Path) -> dict[str, Outcome]:
    targets = central_config.targets(central_config.load(path), path)
    return {o.site: o for o in asyncio.run(pull_once(store, targets, 5.0))}


def dcmeter(*args: str, **kw: Any) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dcmeter", *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, "PYTHONPATH": str(ROOT)},
                          **kw)


def promtool_check(text: str) -> None:
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install the Debian package prometheus (.ci/run does)")
    out = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                         capture_output=True, timeout=30)
    report = (out.stdout + out.stderr).decode()
    assert out.returncode == 0 and not report.strip(), report


def scrape(url: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    text = httpx.get(f"{url}/metrics").text
    promtool_check(text)
    return {(s.name, frozenset(s.labels.items())): s.value
            for f in text_string_to_metric_families(text) for s in f.samples}


def details(hits: list[str], wid: int) -> int:
    return hits.count(f"/api/v1/windows/{wid}")


def test_two_sites_one_stopped_midway(
    sites: dict[str, SiteCollector], tmp_path: Path, store_location: Callable[[str], Path | str]
) -> None:
    a, b = sites["a"], sites["b"]
    path = write_config(tmp_path, sites, store_location("central"))
    store = CentralStore(store_location("central"))
    reader = create_token(cast(Store, store), "reader")[1]
    app = create_central_app(store, [("a", a.url), ("b", b.url)])
    try:
        with serve(app) as url, httpx.Client(
            base_url=url, headers={"Authorization": f"Bearer {reader}"}
        ) as api:
            got = pull(store, path)
            assert [(o.ok, o.windows, o.fetched) for o in got.values()] == [(True, 2, 2)] * 2
            listed = api.get("/api/v1/windows").json()
            assert sorted((w["site"], w["id"], w["state"], w["note"]) for w in listed) == [
                ("a", 1, "closed", "closed hour"), ("a", 2, "open", "still open"),
                ("b", 1, "closed", "closed hour"), ("b", 2, "open", "still open")]
            assert [w["id"] for w in api.get("/api/v1/windows?site=b&state=open").json()] == [2]
            for name, s in sites.items():
                r = api.get(f"/api/v1/sites/{name}/windows/1").json()
                assert r.pop("site") == name and parse_rfc3339(r.pop("pulled")) > T0
                r["site"] = r.pop("site_name")  # the result's own field, under another key
                assert r == s.result(1) and r["pue"] == pytest.approx(1.5)
            assert api.get("/api/v1/sites/a/windows/9").status_code == 404
            assert api.get("/api/v1/windows?site=c").status_code == 422

            # A closed window is final: pulled once; an open one every time, and once more
            # after it closed.
            a.hits.clear()
            pull(store, path)
            assert (details(a.hits, 1), details(a.hits, 2)) == (0, 1)
            with a.http() as h:
                assert h.post("/api/v1/windows/2/stop", json={"end": END}).is_success
            pull(store, path)
            pull(store, path)
            assert (details(a.hits, 1), details(a.hits, 2)) == (0, 2)
            assert store.window("a", 2) is not None
            assert api.get("/api/v1/sites/a/windows/2").json()["window"]["state"] == "closed"
            # A re-evaluated window (collectors/results/frozen.py) is pulled once more: its latest
            # revision, which the site's list names.
            with a.http() as h:
                assert h.post("/api/v1/windows/1/reevaluate",
                              json={"reason": "central test"}).status_code == 201
            a.hits.clear()
            pull(store, path)
            pull(store, path)
            assert details(a.hits, 1) == 1
            assert api.get("/api/v1/sites/a/windows/1").json()["revision"]["number"] == 2

            # Site b stops; site a goes on and gets a new window.
            b.stop()
            new = a.open("after b stopped")
            with capture_logs() as logs:
                first = pull(store, path)
                second = pull(store, path)
            assert first["a"].ok and second["a"].ok and first["a"].windows == 3
            assert (a.url and store.window("a", new)) is not None
            assert not first["b"].ok and "unreachable" in str(first["b"].error)
            downs = [e for e in logs if e["event"] == "site down"]
            assert [(e["site"], e["log_level"]) for e in downs] == [("b", "warning")]
            assert "unreachable" in downs[0]["reason"] and reader not in str(logs)
            assert b.tokens["reader"] not in str(logs)
            view = {s["site"]: s for s in api.get("/api/v1/sites").json()}
            assert view["a"]["state"] == "ok" and view["a"]["failures"] == 0
            vb = view["b"]
            assert (vb["state"], vb["failures"]) == ("down", 2)
            assert "unreachable" in vb["last_error"] and vb["down_since"] and vb["last_ok"]
            assert parse_rfc3339(vb["down_since"]) >= parse_rfc3339(vb["last_ok"])
            m = scrape(url)
            assert m[("dcmeter_central_site_up", frozenset({("site", "b")}))] == 0
            assert m[("dcmeter_central_site_up", frozenset({("site", "a")}))] == 1
            assert m[("dcmeter_central_site_failed_pulls", frozenset({("site", "b")}))] == 2
            assert ("dcmeter_central_last_pull_timestamp_seconds",
                    frozenset({("site", "b")})) in m
            # The site gauges of the live site are re-exposed with its label; b's are not.
            assert m[("dcmeter_windows_open",
                      frozenset({("site", "a"), ("kind", "infrastructure")}))] == 1
            assert not any(k[0] == "dcmeter_windows_open" and ("site", "b") in k[1] for k in m)

            cli = dcmeter("central", "pull", "-c", str(path), "--once")
            assert cli.returncode == 1, cli.stderr
            lines = cli.stdout.splitlines()
            assert lines[0] == "a: ok: 3 windows (1 results pulled)"
            assert lines[1].startswith("b: down: unreachable") and len(lines) == 2
            assert cli.stderr.count('"event": "site down"') == 0  # b was already down

            # b comes back on the same store and port, with a window opened meanwhile.
            later = b.store.open_window("general", int(T0 * 1e9), "while away", time.time_ns())
            b.start()
            with capture_logs() as logs:
                back = pull(store, path)
            assert back["b"].ok and back["b"].windows == 3
            assert store.window("b", later.id) is not None
            assert [e["site"] for e in logs if e["event"] == "site recovered"] == ["b"]
            assert not [e for e in logs if e["event"] == "site down"]
            assert api.get("/api/v1/sites").json()[1]["state"] == "ok"
            assert scrape(url)[("dcmeter_central_site_up", frozenset({("site", "b")}))] == 1

            cli = dcmeter("central", "pull", "-c", str(path), "--once")
            assert cli.returncode == 0 and cli.stdout == (
                # Open windows are pulled every time: a's window 3, b's 2 and 3.
                "a: ok: 3 windows (1 results pulled)\nb: ok: 3 windows (2 results pulled)\n"
            ), cli.stdout + cli.stderr
    finally:
        store.close()


def test_wrong_token_is_that_site_down(
    sites: dict[str, SiteCollector], tmp_path: Path, store_location: Callable[[str], Path | str]
) -> None:
    path = write_config(tmp_path, sites, store_location("central"),
                        tokens={"b": "dcm_wrong-token"})
    store = CentralStore(store_location("central"))
    try:
        with capture_logs() as logs:
            got = pull(store, path)
        assert got["a"].ok and got["a"].windows == 2
        assert not got["b"].ok and "refused the token (401)" in str(got["b"].error)
        assert "token-b" in str(got["b"].error) and "dcm_wrong" not in str(logs)
        assert store.windows("b") == [] and len(store.windows("a")) == 2
        # An engineer's token is accepted too (it may read): the site decides, not the central.
    finally:
        store.close()


def test_central_api_needs_a_token_and_metrics_pass_promtool(
    store_location: Callable[[str], Path | str]
) -> None:
    store = CentralStore(store_location("central"))
    app = create_central_app(store, [("a", "http://127.0.0.1:9")])
    try:
        with serve(app) as url:
            r = httpx.get(f"{url}/api/v1/windows")
            assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
            bad = httpx.get(f"{url}/api/v1/sites", headers={"Authorization": "Bearer dcm_x"})
            assert bad.status_code == 401
            assert httpx.get(f"{url}/api/v1/health").json() == {
                "status": "ok", "sites": 1, "sites_up": 0}
            m = scrape(url)  # nothing pulled yet: a is not up, no timestamp
            assert m == {("dcmeter_central_site_up", frozenset({("site", "a")})): 0.0,
                         ("dcmeter_central_site_failed_pulls", frozenset({("site", "a")})): 0.0}
    finally:
        store.close()


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ('[[sites]]\nname = "a"\nurl = "http://x"\ntoken_file = "t"\n'
         '[[sites]]\nname = "a"\nurl = "http://y"\ntoken_file = "t"\n',
         "site name 'a' appears twice"),
        ('[[sites]]\nname = "a b"\nurl = "http://x"\ntoken_file = "t"\n',
         "key sites[0].name: bad value 'a b'"),
        ('[[sites]]\nname = "a"\nurl = "ftp://x"\ntoken_file = "t"\n',
         "key sites[0].url: bad value 'ftp://x'"),
        ('[central]\nhost = "0.0.0.0"\nauth = false\n', "auth = false is allowed only"),
        ('[[sites]]\nname = "a"\nurl = "http://x"\ntoken_file = "absent"\n',
         "key sites[0].token_file"),
        ('[[sites]]\nname = "a"\nurl = "http://x"\ntoken_file = "empty"\n', "the file is empty"),
        # The store: a URL of another engine, and a PostgreSQL that does not answer (port 1
        # refuses); the password is masked in both lines.
        ('[central]\nstore = "mysql://u:secret@h/db"\n',
         "key central.store: bad value 'mysql://u:***@h/db': not a supported URL"),
        ('[central]\nstore = "postgresql://u:secret@127.0.0.1:1/db"\n',
         "store postgresql://u:***@127.0.0.1:1/db: cannot connect to PostgreSQL"),
    ],
)
def test_bad_config_is_one_line_and_exit_2(tmp_path: Path, body: str, message: str) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "t").write_text("dcm_x\n")
    cfg = tmp_path / "central.toml"
    cfg.write_text(body)
    r = dcmeter("central", "pull", "-c", str(cfg), "--once")
    assert r.returncode == 2 and message in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert r.stderr.startswith("dcmeter: configuration error:") and r.stderr.count("\n") == 1
    assert "secret" not in r.stderr


def test_example_config_loads() -> None:
    cfg = central_config.load(ROOT / "config" / "central.toml")
    assert [s.name for s in cfg.sites] == ["site-a", "site-b"]
    assert (cfg.central.port, cfg.central.interval_s, cfg.central.auth) == (8471, 300, True)


def test_schedule_serves_and_stops_on_sigterm(
    sites: dict[str, SiteCollector], tmp_path: Path, store_location: Callable[[str], Path | str]
) -> None:
    port = free_port()
    path = write_config(tmp_path, sites, store_location("central"),
                        extra=f"port = {port}\ninterval_s = 0.2")
    made = dcmeter("central", "token", "create", "-c", str(path))
    assert made.returncode == 0 and made.stdout.startswith("dcm_"), made.stderr
    token = made.stdout.strip()
    proc = subprocess.Popen([sys.executable, "-m", "dcmeter", "central", "pull", "-c", str(path)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    try:
        deadline, seen = time.monotonic() + 20, 0
        headers = {"Authorization": f"Bearer {token}"}
        while time.monotonic() < deadline:
            try:
                view = httpx.get(f"http://127.0.0.1:{port}/api/v1/sites", headers=headers).json()
                if all(s["state"] == "ok" for s in view):
                    seen = sites["a"].hits.count("/api/v1/windows")
                    if seen >= 3:  # pulled on the schedule, again and again
                        break
            except httpx.TransportError:
                pass
            time.sleep(0.1)
        assert seen >= 3
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert '"event": "central stopped"' in out and token not in out + err
    assert sites["b"].tokens["reader"] not in out + err
