"""Shared fixtures: a real collector on a real socket, agent keys, simulated meters, and
the collector's store on the backend chosen by `--store` (SQLite, or a private PostgreSQL
server this session starts: docs/postgresql.md)."""

from __future__ import annotations

import asyncio
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import structlog
import uvicorn
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from fastapi import Request

from dcmeter.collectors.evaluation.site import load_site
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.api import create_app
from dcmeter.collectors.web.auth import create_token

ROOT = Path(__file__).resolve().parent.parent

SITE_TOML = """
[site]
name = "test site"
region = "east-2023"

[energy]
total = ["meter-total"]
it = ["meter-it"]
it_point = "it_pdu"
"""


def pytest_configure(config: pytest.Config) -> None:
    """Send the log lines of in-process collectors (their audit trail) to the real stderr,
    which pytest captures per test, not into the stdout a command's test reads back."""
    structlog.configure(logger_factory=structlog.PrintLoggerFactory(sys.__stderr__))


def pytest_addoption(parser: pytest.Parser) -> None:
    """`--store`: the backend of the collector stores the tests make (`store_location`)."""
    parser.addoption(
        "--store", choices=("sqlite", "postgresql"), default="sqlite",
        help="collector store backend for the tests: sqlite (a file in tmp_path) or"
        " postgresql (a private server started for the session, a database per test)",
    )


def pg_bindir() -> Path | None:
    """The newest installed PostgreSQL server's bin folder (Debian layout), or None."""
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"),
                   key=lambda p: int(p.parent.parent.name) if p.parent.parent.name.isdigit() else 0)
    if found:
        return found[-1].parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class PgServer:
    """A private PostgreSQL cluster: trust auth on 127.0.0.1 for user `dcmeter`."""

    root: Path
    port: int

    def url(self, db: str) -> str:
        """The URL of database `db` on this server."""
        return f"postgresql://dcmeter@127.0.0.1:{self.port}/{db}"


def start_pg(bindir: Path) -> PgServer:
    """initdb + pg_ctl start a throwaway cluster (as `postgres` when run as root)."""
    root = Path(tempfile.mkdtemp(prefix="dcmeter-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:  # the server refuses to run as root
        shutil.chown(root, "postgres")
        as_user = ["runuser", "-u", "postgres", "--"]
    port = free_port()

    def run(*cmd: str) -> None:
        done = subprocess.run([*as_user, *cmd], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            log = root / "log"
            tail = log.read_text()[-2000:] if log.exists() else ""
            raise RuntimeError(f"{' '.join(cmd)} failed: {done.stderr.strip()}\n{tail}")

    run(str(bindir / "initdb"), "-D", str(root / "data"), "-A", "trust", "-U", "dcmeter",
        "-E", "UTF8", "--locale=C")
    run(str(bindir / "pg_ctl"), "-D", str(root / "data"), "-l", str(root / "log"), "-w",
        "-o", f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off"
        " -c synchronous_commit=off -c full_page_writes=off -c max_connections=200", "start")
    return PgServer(root, port)


def stop_pg(bindir: Path, server: PgServer) -> None:
    """Stop the cluster and remove its folder."""
    as_user = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
    subprocess.run([*as_user, str(bindir / "pg_ctl"), "-D", str(server.root / "data"), "-m",
                    "immediate", "-w", "stop"], capture_output=True, timeout=60)
    shutil.rmtree(server.root, ignore_errors=True)


@pytest.fixture(scope="session")
def pg_server() -> Iterator[PgServer]:
    """A PostgreSQL server for the session; a failure to start FAILS the tests (no skip)."""
    bindir = pg_bindir()
    if bindir is None:
        pytest.fail("--store=postgresql: no PostgreSQL server binaries (initdb) found: install"
                    " the Debian package postgresql (as .ci/run does)", pytrace=False)
    try:
        import psycopg  # noqa: F401
    except ImportError:
        pytest.fail("--store=postgresql needs psycopg 3: pip install 'dcmeter[postgresql]'",
                    pytrace=False)
    try:
        server = start_pg(bindir)
    except (OSError, RuntimeError, subprocess.SubprocessError) as exc:
        pytest.fail(f"--store=postgresql: PostgreSQL did not start: {exc}", pytrace=False)
    try:
        yield server
    finally:
        stop_pg(bindir, server)


class StoreLocations:
    """Makes collector store locations on the `--store` backend: SQLite files, or new
    PostgreSQL databases `t_<uuid>` on the session's server (dropped when told, or at the
    end of the session)."""

    def __init__(self, server: PgServer | None) -> None:
        self.server = server
        self.made: list[str] = []

    def _admin(self) -> Any:
        import psycopg

        assert self.server is not None
        return psycopg.connect(self.server.url("postgres"), autocommit=True)

    def new(self, sqlite_path: Path) -> Path | str:
        """`sqlite_path` itself on SQLite, else the URL of a new, empty database."""
        if self.server is None:
            return sqlite_path
        db = f"t_{uuid.uuid4().hex}"
        with self._admin() as conn:
            conn.execute(f"CREATE DATABASE {db}")
        self.made.append(db)
        return self.server.url(db)

    def drop(self, location: Path | str) -> None:
        """Drop a database made by `new` (nothing on SQLite: tmp_path goes by itself)."""
        if isinstance(location, str):
            db = location.rsplit("/", 1)[1]
            with self._admin() as conn:
                conn.execute(f"DROP DATABASE IF EXISTS {db} WITH (FORCE)")
            self.made.remove(db)


@pytest.fixture(scope="session")
def store_locations(request: pytest.FixtureRequest) -> Iterator[StoreLocations]:
    """The session's maker of store locations (for module-scoped fixtures)."""
    pg = request.config.getoption("--store") == "postgresql"
    made = StoreLocations(request.getfixturevalue("pg_server") if pg else None)
    yield made
    for db in list(made.made):
        made.drop(f"/{db}")


@pytest.fixture
def store_location(
    tmp_path: Path, store_locations: StoreLocations
) -> Iterator[Callable[[str], Path | str]]:
    """`store_location(name)`: where a test's collector store `name` lives on the `--store`
    backend: `tmp_path/<name>.sqlite`, or a new PostgreSQL database dropped after the test.
    The same name gives the same location, so a test can reopen its store."""
    made: dict[str, Path | str] = {}

    def at(name: str) -> Path | str:
        if name not in made:
            made[name] = store_locations.new(tmp_path / f"{name}.sqlite")
        return made[name]

    try:
        yield at
    finally:
        for location in made.values():
            store_locations.drop(location)


def free_port() -> int:
    """A TCP port on loopback that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextmanager
def running(server: uvicorn.Server, scheme: str = "http") -> Iterator[str]:
    """Run a built uvicorn server in a thread until the block ends; yield its base URL."""
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert time.monotonic() < deadline, "collector did not start"
        time.sleep(0.02)
    try:
        yield f"{scheme}://127.0.0.1:{server.config.port}"
    finally:
        server.should_exit = True
        thread.join(10)


@contextmanager
def serve(app: Any) -> Iterator[str]:
    """Serve an ASGI app with uvicorn on a free loopback port in a thread; yield its base URL."""
    config = uvicorn.Config(app, host="127.0.0.1", port=free_port(), log_config=None,
                            access_log=False)
    with running(uvicorn.Server(config)) as url:
        yield url


@dataclass
class Collector:
    """A running collector: its base URL, store, ingest counters and enrolled keys."""

    url: str
    store: Store
    ingest: Ingest
    keys: dict[str, Ed25519PrivateKey]
    # Upper bound of a random delay before each batch is handled, s: a slow network.
    batch_delay_s: list[float]
    # A bearer token per role ("engineer", "reader") for the windows API.
    tokens: dict[str, str]

    def http(self, role: str = "engineer") -> httpx.Client:
        """An httpx client sending the bearer token of `role` (close it, or use `with`)."""
        return httpx.Client(headers={"Authorization": f"Bearer {self.tokens[role]}"})


@pytest.fixture
def collector(
    tmp_path: Path, store_location: Callable[[str], Path | str]
) -> Iterator[Collector]:
    """A collector on 127.0.0.1 with its store on the `--store` backend (SQLite in tmp_path
    by default) and agent 'agent-1' enrolled."""
    site_file = tmp_path / "site.toml"
    site_file.write_text(SITE_TOML)
    store = Store(store_location("collector"))
    key = Ed25519PrivateKey.generate()
    ingest = Ingest(store, {"agent-1": key.public_key()}, max_bytes=1 << 20)
    app = create_app(store, ingest, load_site(site_file))
    delay = [0.0]
    tokens = {role: create_token(store, role)[1] for role in ("engineer", "reader")}

    @app.middleware("http")
    async def slow_batches(request: Request, call_next: Any) -> Any:
        if delay[0] and request.url.path.endswith("/batches"):
            await asyncio.sleep(random.uniform(0, delay[0]))
        return await call_next(request)

    try:
        with serve(app) as url:
            yield Collector(url, store, ingest, {"agent-1": key}, delay, tokens)
    finally:
        store.close()


class MeterThread:
    """Simulated Modbus meters served from an event loop in a background thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.meters: list[object] = []

    def add(self, profile: str, values: Callable[[], dict[str, float]]) -> int:
        """Serve one meter of `profile`; return its port."""
        from dcmeter.sim.meters import SimMeter

        meter = SimMeter(profile, values)
        self.meters.append(meter)
        return int(asyncio.run_coroutine_threadsafe(meter.start(), self.loop).result(10))

    def close(self) -> None:
        """Stop every meter and the loop."""
        for m in self.meters:
            asyncio.run_coroutine_threadsafe(m.stop(), self.loop).result(10)  # type: ignore[attr-defined]
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


@pytest.fixture
def meters() -> Iterator[MeterThread]:
    """A place to start simulated meters; all stopped at the end of the test."""
    m = MeterThread()
    try:
        yield m
    finally:
        m.close()
