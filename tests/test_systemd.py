"""The systemd units and what the services tell systemd (sd_notify), against real processes.

`systemd-analyze verify` and `security --offline` check the unit files; real `dcmeter agent
run` and `dcmeter collector serve` processes send their notifications to a datagram socket
the test listens on (as systemd's would); SIGTERM drains the agent into its buffer and
SIGHUP reloads its config, checked against what the simulated meters actually served.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import sqlite3
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from conftest import ROOT, SITE_TOML, MeterThread, free_port

from dcmeter.agent import wire
from dcmeter.agent.buffer import envelope_body
from dcmeter.base import sdnotify

UNITS = ("dcmeter-agent.service", "dcmeter-collector.service")
ANALYZE = shutil.which("systemd-analyze")
needs_analyze = pytest.mark.skipif(ANALYZE is None, reason="systemd-analyze not installed")


# ---- the unit files ----------------------------------------------------------------------


def unit_copy(tmp: Path, name: str) -> Path:
    """The unit with ExecStart's /usr/bin/dcmeter pointed at this venv's console script."""
    dcmeter = Path(sys.executable).parent / "dcmeter"
    assert dcmeter.exists(), f"{dcmeter}: install the project (pip install -e .)"
    text = (ROOT / "systemd" / name).read_text()
    assert "ExecStart=/usr/bin/dcmeter " in text
    out = tmp / name
    out.write_text(text.replace("/usr/bin/dcmeter", str(dcmeter)))
    return out


@needs_analyze
@pytest.mark.parametrize("name", UNITS)
def test_unit_verifies_clean(tmp_path: Path, name: str) -> None:
    unit = unit_copy(tmp_path, name)
    r = subprocess.run([str(ANALYZE), "verify", "--man=no", str(unit)], capture_output=True,
                       text=True, timeout=60)
    # verify exits 0 on unknown keys too (it only warns): any output is a finding.
    assert r.returncode == 0 and not r.stdout.strip() and not r.stderr.strip(), r.stdout + r.stderr


@needs_analyze
def test_verify_finds_a_broken_unit(tmp_path: Path) -> None:
    unit = unit_copy(tmp_path, UNITS[0])
    unit.write_text(unit.read_text().replace("WatchdogSec=30", "WatchdogSecs=30"))
    r = subprocess.run([str(ANALYZE), "verify", "--man=no", str(unit)], capture_output=True,
                       text=True, timeout=60)
    assert "WatchdogSecs" in r.stderr


@needs_analyze
@pytest.mark.parametrize(("name", "most"), [(UNITS[0], 2.2), (UNITS[1], 1.7)])
def test_unit_exposure_score(tmp_path: Path, name: str, most: float) -> None:
    unit = unit_copy(tmp_path, name)
    r = subprocess.run([str(ANALYZE), "security", "--offline=yes", str(unit)],
                       capture_output=True, text=True, timeout=60)
    line = next(x for x in r.stdout.splitlines() if "Overall exposure level" in x)
    score = float(line.split(":")[1].split()[0])
    print(f"{name}: {line.strip()}")
    assert score <= most, line  # docs: systemd/README.md records the scores


def test_units_use_the_state_dir_the_configs_default_to() -> None:
    from dcmeter.agent.config import AgentSection
    from dcmeter.collectors.config import CollectorSection

    for name in UNITS:
        text = (ROOT / "systemd" / name).read_text()
        assert "StateDirectory=dcmeter\n" in text and "Type=notify\n" in text
    assert AgentSection().state_dir == Path("/var/lib/dcmeter")
    assert CollectorSection().store.parent == Path("/var/lib/dcmeter")


# ---- sdnotify ------------------------------------------------------------------------------


@dataclass
class Note:
    """One datagram: its fields, the sender's pid (SCM_CREDENTIALS) and when it came."""

    fields: list[str]
    pid: int
    at: float


class NotifySocket:
    """A SOCK_DGRAM socket standing in for systemd's notification socket."""

    def __init__(self, address: str) -> None:
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(address.replace("@", "\0", 1) if address.startswith("@") else address)
        self.address = address
        self.notes: list[Note] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._read, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        size = socket.CMSG_SPACE(struct.calcsize("3i"))
        while True:
            try:
                data, anc, _, _ = self.sock.recvmsg(4096, size)
            except OSError:
                return
            pid = -1
            for level, kind, body in anc:
                if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                    pid = struct.unpack("3i", body[: struct.calcsize("3i")])[0]
            with self._lock:
                self.notes.append(Note(data.decode().split("\n"), pid, time.monotonic()))

    def fields(self) -> list[tuple[str, int]]:
        """Every field received so far with its sender's pid, in order."""
        with self._lock:
            return [(f, n.pid) for n in self.notes for f in n.fields]

    def wait_for(self, pred: Callable[[list[tuple[str, int]]], bool], timeout: float) -> None:
        """Wait until `pred(fields())` holds."""
        deadline = time.monotonic() + timeout
        while not pred(self.fields()):
            assert time.monotonic() < deadline, f"notifications so far: {self.fields()}"
            time.sleep(0.05)

    def close(self) -> None:
        """Stop listening."""
        self.sock.shutdown(socket.SHUT_RDWR)
        self.sock.close()
        self._thread.join(5)


@pytest.fixture
def notify_socket() -> Iterator[NotifySocket]:
    """A listening notification socket in the abstract namespace (no path length limit)."""
    s = NotifySocket(f"@dcmeter-test-{os.getpid()}-{time.monotonic_ns()}")
    try:
        yield s
    finally:
        s.close()


def test_notifier_sends_to_a_path_socket_and_is_silent_without_one(tmp_path: Path) -> None:
    path = tmp_path / "n.sock"
    listener = NotifySocket(str(path))
    try:
        n = sdnotify.Notifier({"NOTIFY_SOCKET": str(path)})
        assert n.notify("READY=1", "STATUS=up")
        listener.wait_for(lambda f: ("STATUS=up", os.getpid()) in f, 5)
        assert listener.fields() == [("READY=1", os.getpid()), ("STATUS=up", os.getpid())]
        n.close()
    finally:
        listener.close()
    assert not sdnotify.Notifier({}).notify("READY=1")
    # A socket that is gone: the caller is told False, nothing raises.
    gone = sdnotify.Notifier({"NOTIFY_SOCKET": str(path)})
    assert not gone.notify("READY=1") and not gone.notify("WATCHDOG=1")


def test_watchdog_interval_is_half_the_period_for_this_process_only() -> None:
    me = str(os.getpid())
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "30000000", "WATCHDOG_PID": me}) == 15
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "1000000"}) == 0.5
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "0"}) is None
    assert sdnotify.watchdog_interval({"WATCHDOG_USEC": "x"}) is None
    assert sdnotify.watchdog_interval({}) is None


# ---- the agent -----------------------------------------------------------------------------


class CountingMeter:
    """A meter whose power_w is the number of the request: each poll is told apart."""

    def __init__(self, meters: MeterThread) -> None:
        self.served: list[float] = []
        self.slow = threading.Event()
        self.in_flight = threading.Event()
        self.port = meters.add("eastron_sdm630", self.values)

    def values(self) -> dict[str, float]:
        n = float(len(self.served) + 1)
        if self.slow.is_set():
            self.in_flight.set()
            time.sleep(1.0)  # answered within timeout_s, but after the agent was told to stop
        self.served.append(n)
        return {"power_w": n}


def source(sid: str, port: int) -> str:
    """One [[sources]] table: a custom map with power_w only, so one request per poll."""
    return (
        f'[[sources]]\nid = "{sid}"\ntype = "modbus"\nhost = "127.0.0.1"\nport = {port}\n'
        'timeout_s = 3\nretries = 0\nregisters = [{ metric = "power_w", address = 52, register = "input",'
        ' type = "float32", unit = "W" }]\n'
    )


def agent_config(tmp: Path, *sources: str, interval_s: float = 1) -> Path:
    cfg = tmp / "agent.toml"
    cfg.write_text(
        f'[agent]\nid = "agent-1"\ninterval_s = {interval_s}\nstate_dir = "{tmp / "state"}"\n'
        + "".join(sources)
    )
    return cfg


def start(args: list[str], tmp: Path, notify: NotifySocket) -> subprocess.Popen[bytes]:
    """Start `dcmeter ARGS` as systemd would: NOTIFY_SOCKET, WATCHDOG_USEC, WATCHDOG_PID.

    WATCHDOG_PID must be the service's own pid, unknown before it starts: the shell sets it
    to its own pid ($$) and then execs dcmeter in its place, keeping that pid.
    """
    env = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": notify.address,
           "WATCHDOG_USEC": "1000000"}
    cmd = 'WATCHDOG_PID=$$ exec "$@"'
    return subprocess.Popen(
        ["/bin/sh", "-c", cmd, "sh", sys.executable, "-m", "dcmeter", *args], env=env,
        stdout=(tmp / "stdout.log").open("wb"), stderr=subprocess.STDOUT,
    )


def buffered(state: Path) -> tuple[dict[str, list[float]], int]:
    """power_w values per source in the sealed batches, and how many samples are unsealed."""
    db = sqlite3.connect(state / "buffer.sqlite")
    try:
        values: dict[str, list[float]] = {}
        for (raw,) in db.execute("SELECT raw FROM batches ORDER BY seq"):
            b = wire.decode_body(envelope_body(raw))
            for s, m, v in zip(b.src, b.met, b.val, strict=True):
                assert b.metrics[m].spec.name == "power_w"
                values.setdefault(b.sources[s].id, []).append(v)
        unsealed = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
        return values, int(unsealed)
    finally:
        db.close()


def wait(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def stop(proc: subprocess.Popen[bytes], tmp: Path) -> float:
    """SIGTERM the process; assert it exits 0; return how long it took, s."""
    t0 = time.monotonic()
    proc.send_signal(signal.SIGTERM)
    rc = proc.wait(timeout=20)
    took = time.monotonic() - t0
    assert rc == 0, (tmp / "stdout.log").read_text()[-3000:]
    return took


def test_agent_notifies_and_drains_a_poll_in_flight_on_sigterm(
    tmp_path: Path, meters: MeterThread, notify_socket: NotifySocket
) -> None:
    meter = CountingMeter(meters)
    cfg = agent_config(tmp_path, source("meter-a", meter.port))
    proc = start(["agent", "run", "-c", str(cfg)], tmp_path, notify_socket)
    try:
        notify_socket.wait_for(lambda f: ("READY=1", proc.pid) in f, 30)
        wait(lambda: len(meter.served) >= 3, 15, "three polls")
        meter.slow.set()
        assert meter.in_flight.wait(5)
        took = stop(proc, tmp_path)  # sent while the fourth poll waits for its answer
    finally:
        if proc.poll() is None:
            proc.kill()
    assert took < 10, f"stop took {took:.1f} s"
    wait(lambda: len(meter.served) >= 4, 5, "the poll in flight to be answered")
    fields = notify_socket.fields()
    assert {pid for _, pid in fields} == {proc.pid}  # NotifyAccess=main accepts them all
    names = [f for f, _ in fields]
    ready, stopping = names.index("READY=1"), names.index("STOPPING=1")
    assert names[ready:stopping].count("WATCHDOG=1") >= 2, names
    assert any(f.startswith("STATUS=polling 1 sources") for f in names), names
    values, unsealed = buffered(tmp_path / "state")
    assert unsealed == 0
    assert values["meter-a"] == meter.served  # every poll, the one in flight at SIGTERM too


def test_agent_reloads_on_sighup_without_losing_samples(
    tmp_path: Path, meters: MeterThread, notify_socket: NotifySocket
) -> None:
    a, b = CountingMeter(meters), CountingMeter(meters)
    cfg = agent_config(tmp_path, source("meter-a", a.port))
    proc = start(["agent", "run", "-c", str(cfg)], tmp_path, notify_socket)
    try:
        notify_socket.wait_for(lambda f: ("READY=1", proc.pid) in f, 30)
        wait(lambda: len(a.served) >= 2, 15, "meter-a polled")
        agent_config(tmp_path, source("meter-a", a.port), source("meter-b", b.port))
        proc.send_signal(signal.SIGHUP)
        wait(lambda: len(b.served) >= 2, 15, "meter-b polled after the reload")
        names = [f for f, _ in notify_socket.fields()]
        assert names.index("RELOADING=1") < names.index("READY=1", names.index("RELOADING=1"))

        # A broken config is refused with the file, key and what is valid; the old one runs on.
        cfg.write_text(cfg.read_text().replace("interval_s = 1", "interval_s = 0"))
        proc.send_signal(signal.SIGHUP)
        log = tmp_path / "stdout.log"
        wait(lambda: "configuration not reloaded" in log.read_text(), 10, "the refusal")
        refusal = next(x for x in log.read_text().splitlines() if "not reloaded" in x)
        assert "agent.toml: key agent.interval_s: bad value 0" in refusal
        assert "greater than or equal to 1" in refusal
        n = len(b.served)
        wait(lambda: len(b.served) >= n + 2, 15, "polling to go on with the old config")
        stop(proc, tmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
    values, unsealed = buffered(tmp_path / "state")
    assert unsealed == 0
    assert values["meter-a"] == a.served and values["meter-b"] == b.served


# ---- the collector -------------------------------------------------------------------------


def test_collector_notifies_ready_once_listening_and_exits_0(
    tmp_path: Path, notify_socket: NotifySocket
) -> None:
    (tmp_path / "site.toml").write_text(SITE_TOML)
    port = free_port()
    cfg = tmp_path / "collector.toml"
    cfg.write_text(
        f'[collector]\nhost = "127.0.0.1"\nport = {port}\nstore = "collector.sqlite"\n'
        'site = "site.toml"\nauth = false\n'
    )
    proc = start(["collector", "serve", "-c", str(cfg)], tmp_path, notify_socket)
    try:
        notify_socket.wait_for(lambda f: ("READY=1", proc.pid) in f, 30)
        # READY=1 means listening: the first request after it is answered.
        assert httpx.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=5).status_code == 200
        notify_socket.wait_for(lambda f: [x for x, _ in f].count("WATCHDOG=1") >= 2, 5)
        stop(proc, tmp_path)
    finally:
        if proc.poll() is None:
            proc.kill()
    fields = notify_socket.fields()
    assert {pid for _, pid in fields} == {proc.pid}
    names = [f for f, _ in fields]
    assert names.index("READY=1") < names.index("WATCHDOG=1") < names.index("STOPPING=1")
    assert (tmp_path / "collector.sqlite").exists()

