"""A collector that cannot be starved: each finding of issue 12 item 4, against the real stack.

The collector is built by `dcmeter.collectors.commands.cli.build` from a config file (the uvicorn protocol
with its head timeout, the connection limit, the body guard, the off-loop reads) and served
on a real loopback socket; hostile clients speak raw HTTP over sockets where a well-behaved
client library would hide what is tested (a body never sent, a head never finished).
"""

from __future__ import annotations

import resource
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
from conftest import SITE_TOML, free_port, running
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import pubkey, wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.commands.cli import build
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.auth import create_token

CT = {"content-type": "application/x-msgpack"}
IT = SourceInfo("meter-it", "modbus", "127.0.0.1:502/2", {"point": "it_pdu"})
MB_100 = 100 * 2**20


@dataclass
class Running:
    """A collector built from its config file, serving on loopback."""

    url: str
    port: int
    store: Store
    key: Ed25519PrivateKey
    tokens: dict[str, str]


def config_text(port: int, store: Path | str, key: Ed25519PrivateKey, **limits: Any) -> str:
    """A collector.toml on `port` with `store`, agent-1 enrolled and `limits` in [collector]."""
    extra = "\n".join(f"{k} = {v!r}" for k, v in limits.items())
    return (
        f'[collector]\nhost = "127.0.0.1"\nport = {port}\nstore = "{store}"\n'
        f'site = "site.toml"\nmax_batch_mb = 64\n{extra}\n\n'
        f'[[agents]]\nid = "agent-1"\npublic_key = "{pubkey.public_text(key.public_key())}"\n'
    )


@pytest.fixture
def start(
    tmp_path: Path, store_location: Callable[[str], Path | str]
) -> Iterator[Callable[..., Any]]:
    """`with start(**limits) as c:` a collector with these `[collector]` settings."""

    @contextmanager
    def at(**limits: Any) -> Iterator[Running]:
        (tmp_path / "site.toml").write_text(SITE_TOML)
        key = Ed25519PrivateKey.generate()
        port = free_port()
        cfg = tmp_path / "collector.toml"
        cfg.write_text(config_text(port, store_location("c"), key, **limits))
        server, store = build(cfg)
        tokens = {role: create_token(store, role)[1] for role in ("engineer", "reader")}
        try:
            with running(server) as url:
                yield Running(url, port, store, key, tokens)
        finally:
            store.close()

    yield at


def head(port: int, text: str) -> socket.socket:
    """A connection that has sent `text` (a request head, complete or not)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=10)
    s.sendall(text.replace("\n", "\r\n").encode())
    return s


def answer(s: socket.socket, within_s: float = 20.0) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP response (status, headers, body); fail if none comes in `within_s`."""
    s.settimeout(within_s)
    data = b""
    try:
        while b"\r\n\r\n" not in data:
            chunk = s.recv(65536)
            if not chunk:
                pytest.fail(f"connection closed without a full response: {data!r}")
            data += chunk
        top, _, body = data.partition(b"\r\n\r\n")
        lines = top.decode("latin-1").split("\r\n")
        headers = {k.strip().lower(): v.strip() for k, v in (x.split(":", 1) for x in lines[1:])}
        while len(body) < int(headers.get("content-length", 0)):
            chunk = s.recv(65536)
            if not chunk:
                break
            body += chunk
    except TimeoutError:
        pytest.fail(f"no response within {within_s} s (got {data!r})")
    return int(lines[0].split()[1]), headers, body


def post_head(path: str, length: int, token: str | None = None, ctype: str = "application/json",
              chunked: bool = False) -> str:
    """The head of a POST declaring a body of `length` bytes (or a chunked one)."""
    auth = f"Authorization: Bearer {token}\n" if token else ""
    size = "Transfer-Encoding: chunked\n" if chunked else f"Content-Length: {length}\n"
    return f"POST {path} HTTP/1.1\nHost: collector\nContent-Type: {ctype}\n{auth}{size}\n"


def it_batch(seq: int, metrics: int, per_metric: int, t0_ns: int, prev: bytes = GENESIS) -> Batch:
    """One batch of meter-it: `metrics` power series of `per_metric` samples each, 1 s apart."""
    n = metrics * per_metric
    ts = [t0_ns + (i % per_metric) * 10**9 for i in range(n)]
    arrays = wire.pack_arrays(ts, [0] * n, [i // per_metric for i in range(n)], [1.0] * n)
    # One power series each, told apart by a label: the evaluation integrates every one.
    specs = [MetricEntry(MetricSpec("power_w", "W"), {"junk": str(m)}) for m in range(metrics)]
    return Batch("agent-1", seq, prev, t0_ns, ClockStatus(), [IT], specs, *arrays)


# ---- high: unauthenticated memory exhaustion ----------------------------------------------


def test_unauthenticated_body_is_refused_before_it_is_read(start: Callable[..., Any]) -> None:
    with start() as c:
        # Only the head is sent: the answer must not wait for the 100 MB it announces.
        s = head(c.port, post_head("/api/v1/windows", MB_100))
        status, headers, body = answer(s)
        assert status == 401 and b"bearer token" in body
        assert headers["connection"] == "close" and headers["www-authenticate"] == "Bearer"
        s.close()
        s = head(c.port, post_head("/api/v1/windows", MB_100, c.tokens["reader"]))
        status, _, body = answer(s)
        assert status == 403 and b"engineer" in body
        s.close()
        s = head(c.port, post_head("/api/v1/windows", MB_100, c.tokens["engineer"]))
        status, headers, body = answer(s)
        assert status == 413 and b"collector.max_body_kb" in body
        assert headers["connection"] == "close"
        s.close()
        # Sent for real, the body meets a closed connection long before 100 MB are through.
        s = head(c.port, post_head("/api/v1/windows", MB_100))
        sent, chunk = 0, b"[" * 2**20
        with pytest.raises(OSError):  # broken pipe or reset
            while sent < MB_100:
                sent += s.send(chunk)
        s.close()
        assert sent < MB_100 // 2, f"{sent} bytes were taken in"
        # Small unauthenticated requests keep their connection (and get their 401).
        with httpx.Client() as http:
            r = http.post(f"{c.url}/api/v1/windows", json={"kind": "infrastructure"})
            assert r.status_code == 401 and r.headers.get("connection") != "close"


def test_body_over_the_limit_is_refused_while_it_streams(start: Callable[..., Any]) -> None:
    with start(max_body_kb=1) as c:
        # Chunked: no length to judge by; the limit holds on what arrives. No last chunk.
        s = head(c.port, post_head("/api/v1/windows", 0, c.tokens["engineer"], chunked=True))
        s.sendall(b"800\r\n" + b" " * 0x800 + b"\r\n")
        status, headers, body = answer(s)
        assert status == 413 and b"1024-byte limit" in body and headers["connection"] == "close"
        s.close()


# ---- high: connection exhaustion ------------------------------------------------------------


def test_slow_body_is_answered_408(start: Callable[..., Any]) -> None:
    with start(body_timeout_s=1.0) as c:
        s = head(c.port, post_head("/api/v1/windows", 100, c.tokens["engineer"]))
        s.sendall(b'{"kind": ')  # and then nothing
        began = time.monotonic()
        status, _, body = answer(s)
        assert status == 408 and b"collector.body_timeout_s" in body
        assert time.monotonic() - began < 15
        s.close()


def test_slow_request_head_is_cut_off(start: Callable[..., Any]) -> None:
    with start(header_timeout_s=1.0) as c:
        trickle = head(c.port, "GET /api/v1/health HTTP/1.1\nHost: coll")
        idle = socket.create_connection(("127.0.0.1", c.port), timeout=20)
        status, _, body = answer(trickle)
        assert status == 408 and b"collector.header_timeout_s" in body
        assert idle.recv(100) == b""  # closed, without an answer to a request never made
        trickle.close()
        idle.close()


def test_connections_beyond_the_limit_are_answered_503(start: Callable[..., Any]) -> None:
    with start(limit_concurrency=4, header_timeout_s=60.0) as c:
        held = [socket.create_connection(("127.0.0.1", c.port), timeout=10) for _ in range(6)]
        try:
            # Past limit_concurrency connections, a request is answered 503.
            deadline = time.monotonic() + 20
            status = 0
            while status != 503 and time.monotonic() < deadline:  # until all are accepted
                s = head(c.port, "GET /api/v1/health HTTP/1.1\nHost: c\nConnection: close\n\n")
                status = answer(s)[0]
                s.close()
            assert status == 503
            # Past twice the limit, a connection is answered 503 and closed when accepted,
            # before it sends anything: it holds no descriptor.
            more = [socket.create_connection(("127.0.0.1", c.port), timeout=10)
                    for _ in range(4)]
            held += more
            status, _, body = answer(more[-1])
            assert status == 503 and b"collector.limit_concurrency" in body
            assert more[-1].recv(10) == b""
        finally:
            for s in held:
                s.close()
        deadline = time.monotonic() + 20
        while httpx.get(f"{c.url}/api/v1/health").status_code != 200:
            assert time.monotonic() < deadline, "still refused after the connections closed"
            time.sleep(0.1)


def test_refused_batches_log_one_line_per_reason_and_agent(start: Callable[..., Any]) -> None:
    with start() as c, httpx.Client() as http, structlog.testing.capture_logs() as logs:
        for _ in range(30):
            r = http.post(f"{c.url}/api/v1/batches", content=b"\x00junk", headers=CT)
            assert r.status_code == 400 and r.json()["reason"] == "malformed"
        refused = [e for e in logs if e["event"] == "batch refused"]
        assert len(refused) == 1 and refused[0]["reason"] == "malformed"
        # Every refusal is still counted.
        assert c.store.counts()["rejected"] == 30
        assert http.get(f"{c.url}/api/v1/health").json()["rejected"] == 30


def test_accept_errors_are_logged_once_not_every_second(tmp_path: Path) -> None:
    """A real `dcmeter collector serve` with 48 file descriptors, offered 80 connections."""
    (tmp_path / "site.toml").write_text(SITE_TOML)
    port = free_port()
    cfg = tmp_path / "collector.toml"
    cfg.write_text(config_text(port, tmp_path / "c.sqlite", Ed25519PrivateKey.generate(),
                               header_timeout_s=60.0))
    log = tmp_path / "collector.log"

    def few_fds() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (48, 48))

    with log.open("wb") as out:
        proc = subprocess.Popen([sys.executable, "-m", "dcmeter", "collector", "serve", "-c",
                                 str(cfg)], stdout=out, stderr=subprocess.STDOUT,
                                preexec_fn=few_fds)
    held: list[socket.socket] = []
    try:
        deadline = time.monotonic() + 30
        while True:
            assert proc.poll() is None, log.read_text()[-2000:]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/api/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "collector did not start"
            time.sleep(0.1)
        held = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(80)]
        # asyncio retries a failed accept every second and logged each failure with its
        # traceback; wait for the first line, then give it several seconds to repeat.
        deadline = time.monotonic() + 30
        while "out of system resource" not in log.read_text():
            assert time.monotonic() < deadline, log.read_text()[-2000:]
            time.sleep(0.1)
        time.sleep(5)
        text = log.read_text()
        assert text.count("socket.accept() out of system resource") == 1, text[-3000:]
    finally:
        for s in held:
            s.close()
        proc.terminate()
        proc.wait(15)


# ---- medium: 10,000 junk series; 3,000 open windows -----------------------------------------


def fill(c: Running, metrics: int, per_metric: int = 30) -> None:
    """Store `metrics` junk series of meter-it with samples in the last hour, over HTTP."""
    t0 = time.time_ns() - 40 * 60 * 10**9
    raw = wire.seal(it_batch(1, metrics, per_metric, t0), c.key)
    r = httpx.post(f"{c.url}/api/v1/batches", content=raw, headers=CT, timeout=120)
    assert r.status_code == 200 and r.json()["status"] == "stored", r.text


def test_metrics_scrape_stops_when_the_client_leaves(start: Callable[..., Any]) -> None:
    with start() as c:
        # A scrape evaluates 4,000 power series (one store query each, within the default
        # max_series_per_source): well over the 0.1 s the client waits, on any machine.
        fill(c, 4000)
        with pytest.raises(httpx.ReadTimeout):
            httpx.get(f"{c.url}/metrics", timeout=httpx.Timeout(10, read=0.1))
        deadline = time.monotonic() + 60
        while httpx.get(f"{c.url}/api/v1/health").json().get("reads_abandoned") != 1:
            assert time.monotonic() < deadline, "the scrape was not stopped"
            time.sleep(0.05)


def test_window_read_past_the_time_limit_is_answered_503(start: Callable[..., Any]) -> None:
    with start(read_timeout_s=0.05) as c, c_http(c) as http:
        fill(c, 1000)
        wid = http.post("/api/v1/windows", json={"kind": "infrastructure",
                                                 "start": "2020-01-01T00:00:00Z"}).json()["id"]
        r = http.get(f"/api/v1/windows/{wid}")
        assert r.status_code == 503 and "collector.read_timeout_s = 0.05" in r.json()["detail"]
        assert http.get("/api/v1/health").json()["reads_timed_out"] == 1


@contextmanager
def c_http(c: Running) -> Iterator[httpx.Client]:
    """An engineer's client of `c`."""
    with httpx.Client(base_url=c.url, timeout=60,
                      headers={"Authorization": f"Bearer {c.tokens['engineer']}"}) as http:
        yield http


def test_health_answers_while_large_batches_are_ingested(start: Callable[..., Any]) -> None:
    # Six batches of 500,000 samples (~10 MB each), posted one after the other: health is
    # asked over and over meanwhile, and must be answered inside the second half of some
    # post (its ingest, after the body's upload), not only between posts. One batch alone
    # no longer sufficed: the columnar store ingests it before a single health request
    # (issue 20), and a timed sleep would count events in wall time.
    batches = 6
    with start() as c:
        t0 = time.time_ns() - 10 * 3600 * 10**9
        raws, prev = [], GENESIS
        for seq in range(1, batches + 1):
            body = wire.encode_body(it_batch(seq, 100, 5000, t0 + (seq - 1) * 5000 * 10**9, prev))
            raws.append(wire.envelope(body, c.key))
            prev = wire.batch_hash(body)
        posts: list[tuple[float, float]] = []

        def deliver() -> None:
            with httpx.Client(timeout=120) as http:
                for raw in raws:
                    sent = time.monotonic()
                    r = http.post(f"{c.url}/api/v1/batches", content=raw, headers=CT)
                    assert r.status_code == 200
                    posts.append((sent, time.monotonic()))

        t = threading.Thread(target=deliver)
        t.start()
        asked: list[tuple[float, float, int]] = []
        with httpx.Client(timeout=60) as http:
            while t.is_alive():
                q = time.monotonic()
                r = http.get(f"{c.url}/api/v1/health")
                assert r.status_code == 200
                asked.append((q, time.monotonic(), r.json()["samples"]))
        t.join(120)
        assert len(posts) == batches
        # Asked in the second half of post i and answered before it was stored: the count
        # it gave is the i batches before (an answer that waited for the ingest counts i+1).
        inside = [(q, a, n) for q, a, n in asked for i, (s, e) in enumerate(posts)
                  if s + (e - s) / 2 <= q and a < e and n == 500_000 * i]
        assert inside, f"health never answered during an ingest: posts {posts}, asked {asked}"
        assert httpx.get(f"{c.url}/api/v1/health").json()["samples"] == 500_000 * batches


def test_open_windows_are_capped_per_site(start: Callable[..., Any]) -> None:
    with start(max_open_windows=2) as c, c_http(c) as http:
        ids = [http.post("/api/v1/windows", json={"kind": "general"}).json()["id"]
               for _ in range(2)]
        r = http.post("/api/v1/windows", json={"kind": "general"})
        assert r.status_code == 409 and "collector.max_open_windows = 2" in r.json()["detail"]
        assert len(c.store.windows()) == 2
        assert http.post(f"/api/v1/windows/{ids[0]}/stop").status_code == 200
        assert http.post("/api/v1/windows", json={"kind": "general"}).status_code == 201
