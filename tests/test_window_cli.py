"""`dcmeter window …` and `dcmeter collector token …` against a real collector on a socket."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import IO

import httpx
import pytest
from conftest import ROOT, SITE_TOML, Collector, serve

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.cli.main import main
from dcmeter.cli.window_cli import progress_line
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339
from dcmeter.collectors.evaluation.site import load_site
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.api import create_app
from dcmeter.collectors.web.auth import create_token, token_hash

START, END = "2026-03-01T00:00:00Z", "2026-03-01T01:00:00Z"
T0 = parse_rfc3339(START)


@pytest.fixture
def env(collector: Collector, monkeypatch: pytest.MonkeyPatch) -> Collector:
    """Point the CLI at the collector with an engineer's token, on a wide console."""
    monkeypatch.setenv("DCMETER_COLLECTOR", collector.url)
    monkeypatch.setenv("DCMETER_TOKEN", collector.tokens["engineer"])
    monkeypatch.setenv("COLUMNS", "200")
    return collector


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    """Run `dcmeter ARGV` in this process; return (status, stdout, stderr)."""
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def feed(c: Collector) -> None:
    """Meter power every 60 s from 5 min before START to 5 min after END, one 10 min hole."""
    sources = [SourceInfo("meter-total", "modbus", "127.0.0.1:502", {"point": "total"}),
               SourceInfo("meter-it", "modbus", "127.0.0.1:502", {"point": "it_pdu"})]
    offsets = [t for t in range(-300, 3901, 60) if not 1200 < t < 1800]
    ts = [int((T0 + t) * 1e9) for t in offsets for _ in (0, 1)]
    src = [i for _ in offsets for i in (0, 1)]
    val = [w for _ in offsets for w in (150_000.0, 100_000.0)]
    arrays = wire.pack_arrays(ts, src, [0] * len(ts), val)
    batch = Batch("agent-1", 1, GENESIS, ts[-1], ClockStatus(synced=True), sources,
                  [MetricEntry(MetricSpec("power_w", "W"))], *arrays)
    r = httpx.post(f"{c.url}/api/v1/batches", content=wire.seal(batch, c.keys["agent-1"]),
                   headers={"content-type": "application/x-msgpack"})
    assert r.status_code == 200, r.text


def test_start_list_status_stop(env: Collector, capsys: pytest.CaptureFixture[str]) -> None:
    feed(env)
    code, out, err = cli(capsys, "window", "start", "--kind", "infrastructure", "--note", "hall 1",
                         "--start", START)
    assert (code, err) == (0, "")
    wid = int(out.split()[1])
    assert out == f"window {wid} opened: infrastructure, from {START}\n"
    code, out, _ = cli(capsys, "window", "start", "--kind", "general", "--json")
    general = json.loads(out)
    assert code == 0 and general["kind"] == "general" and general["state"] == "open"

    code, out, _ = cli(capsys, "window", "list", "--json")
    assert [w["id"] for w in json.loads(out)] == [general["id"], wid]
    code, out, _ = cli(capsys, "window", "list", "--kind", "infrastructure", "--json")
    assert [w["id"] for w in json.loads(out)] == [wid]
    code, out, _ = cli(capsys, "window", "list", "--until", "2026-03-02T00:00:00Z")
    assert code == 0 and "hall 1" in out and "general" not in out

    code, out, err = cli(capsys, "window", "stop", str(wid), "--end", END)
    assert (code, err) == (0, "") and out == f"window {wid} closed: infrastructure, {START} → {END}\n"

    code, out, _ = cli(capsys, "window", "status", str(wid), "--json")
    status = json.loads(out)
    api = httpx.get(f"{env.url}/api/v1/windows/{wid}",
                    headers={"Authorization": f"Bearer {env.tokens['reader']}"}).json()
    assert code == 0 and status == api and status["pue"] == pytest.approx(1.5)
    coverage = {q["source"]: q["coverage"] for q in status["quality"]["sources"]}
    assert coverage == {"meter-total": pytest.approx(1.0), "meter-it": pytest.approx(1.0)}

    code, out, err = cli(capsys, "window", "status", str(wid))
    assert (code, err) == (0, "")
    assert f"Window {wid} · infrastructure · closed · hall 1" in out
    assert "1.00 h (no minimum length for infrastructure windows)" in out
    assert "Coverage per source" in out
    lines = [x for x in out.splitlines() if "meter-total" in x and "power_w" in x]
    assert lines and "100.0 %" in lines[0] and "600.0" in lines[0]  # the 10 min hole
    assert "PUE" in out and "1.5000" in out


def test_refusals_are_one_line_and_exit_1(
    env: Collector, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    code, out, _ = cli(capsys, "window", "start", "--kind", "infrastructure", "--start", START)
    wid = int(out.split()[1])
    assert cli(capsys, "window", "stop", str(wid), "--end", END)[0] == 0
    code, out, err = cli(capsys, "window", "stop", str(wid))
    assert (code, out, err) == (1, "", f"dcmeter: window {wid} is already closed (409)\n")
    code, out, err = cli(capsys, "window", "status", "999")
    assert (code, out, err) == (1, "", "dcmeter: no window 999 (404)\n")
    code, _, err = cli(capsys, "window", "stop", str(wid), "--end", "2020-01-01T00:00:00Z")
    assert code == 1 and err.count("\n") == 1 and "(409)" in err
    code, _, err = cli(capsys, "window", "list", "--since", "last week")
    assert code == 1 and err == ("dcmeter: since 'last week' is not an RFC 3339 time with a UTC"
                                 " offset, e.g. 2026-01-01T00:00:00Z (422)\n")
    code, _, err = cli(capsys, "window", "start", "--kind", "ai", "--start", "2026-03-01")
    assert code == 1 and err.startswith("dcmeter: start must carry a UTC offset") and "(422)" in err

    monkeypatch.setenv("DCMETER_TOKEN", env.tokens["reader"])
    code, _, err = cli(capsys, "window", "start", "--kind", "infrastructure")
    assert code == 1
    assert err == "dcmeter: token 'reader-1' has role 'reader'; this needs role 'engineer' (403)\n"
    assert cli(capsys, "window", "list")[0] == 0  # a reader may read

    monkeypatch.setenv("DCMETER_TOKEN", "dcm_not-a-token")
    code, _, err = cli(capsys, "window", "list")
    assert (code, err) == (1, "dcmeter: unknown or revoked bearer token (401)\n")

    monkeypatch.delenv("DCMETER_TOKEN")
    code, _, err = cli(capsys, "window", "status", str(wid))
    assert code == 1 and err.count("\n") == 1
    assert "no bearer token" in err and "(401)" in err and "DCMETER_TOKEN or --token-file" in err
    assert len(env.store.windows()) == 1  # nothing refused was stored


def test_token_file_url_and_unreachable(
    env: Collector, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    monkeypatch.delenv("DCMETER_TOKEN")
    tf = tmp_path / "token"
    tf.write_text(env.tokens["reader"] + "\n")
    assert cli(capsys, "window", "list", "--token-file", str(tf))[:2] == (0, "no windows\n")
    code, _, err = cli(capsys, "window", "list", "--token-file", str(tmp_path / "absent"))
    assert code == 2 and err == f"dcmeter: --token-file {tmp_path / 'absent'}: No such file or directory\n"
    (tmp_path / "empty").write_text("\n")
    code, _, err = cli(capsys, "window", "list", "--token-file", str(tmp_path / "empty"))
    assert code == 2 and "the file is empty" in err
    (tmp_path / "two").write_text("dcm_a dcm_b\n")
    code, _, err = cli(capsys, "window", "list", "--token-file", str(tmp_path / "two"))
    assert code == 2 and "not a token" in err and "dcm_a" not in err
    code, _, err = cli(capsys, "window", "list", "--collector", "ftp://x")
    assert code == 2 and "collector URL 'ftp://x'" in err
    port_closed = "http://127.0.0.1:9"
    code, _, err = cli(capsys, "window", "status", "3", "--collector", port_closed,
                       "--token-file", str(tf))
    assert code == 1 and err.startswith(f"dcmeter: window 3: collector {port_closed} unreachable")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("kind", "hours", "state", "text", "fraction"),
    [
        ("general", 3.0, "open", "3.00 h of 12 h minimum, 24 h recommended (T/CECA-G 0355 A.5):"
         " minimum reached in 9.00 h", 0.125),
        ("general", 13.0, "open", "minimum met; recommended length in 11.00 h", 13 / 24),
        ("general", 6.0, "closed", "closed short of it: the result does not count", 0.25),
        ("general", 30.0, "closed", "recommended length met", 1.0),
        ("ai", 2.5, "open", "2.50 h (no minimum length for ai windows)", None),
    ],
)
def test_progress_against_the_length_rule(
    kind: str, hours: float, state: str, text: str, fraction: float | None
) -> None:
    got, frac = progress_line(kind, hours, state)
    assert text in got
    assert frac == (None if fraction is None else pytest.approx(fraction))


def dcmeter(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run the real CLI in a child process."""
    return subprocess.run(
        [sys.executable, "-m", "dcmeter", *args], capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONPATH": str(ROOT), **(env or {})},
    )


def test_missing_token_in_a_child_process(collector: Collector) -> None:
    env = {"DCMETER_COLLECTOR": collector.url}
    r = dcmeter("window", "start", "--kind", "infrastructure", env=env)
    assert r.returncode == 1 and r.stdout == "" and "Traceback" not in r.stderr
    assert r.stderr.startswith("dcmeter: no bearer token") and r.stderr.count("\n") == 1
    r = dcmeter("window", "stop", "x", env=env)  # usage: as argparse does
    assert r.returncode == 2 and "invalid int value: 'x'" in r.stderr


def test_watch_refreshes_until_ctrl_c(collector: Collector) -> None:
    feed(collector)
    with collector.http() as eng:
        wid = eng.post(f"{collector.url}/api/v1/windows",
                       json={"kind": "general", "start": START}).json()["id"]
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DCMETER_COLLECTOR": collector.url,
           "DCMETER_TOKEN": collector.tokens["reader"], "COLUMNS": "160"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcmeter", "window", "status", str(wid), "--watch",
         "--interval", "0.2"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )
    try:
        deadline = time.monotonic() + 20
        assert proc.stdout is not None
        lines: list[str] = []
        while time.monotonic() < deadline:
            lines.append(proc.stdout.readline())
            if sum(f"Window {wid} · general · open" in x for x in lines) == 3:
                break
    finally:
        proc.send_signal(signal.SIGINT)
        rest, err = proc.communicate(timeout=20)
    out = "".join(lines)
    assert out.count(f"Window {wid} · general · open") == 3, out + rest + err
    assert proc.returncode == 0 and "Traceback" not in err
    assert "of 12 h minimum, 24 h recommended" in out and "recommended length met" in out
    assert "meter-it" in out and "window still open" in out


class Lines:
    """A child's output read line by line in a thread: waiting for a line never blocks."""

    def __init__(self, stream: IO[str]) -> None:
        self.lines: list[str] = []
        self.thread = threading.Thread(target=lambda: self.lines.extend(iter(stream.readline, "")),
                                       daemon=True)
        self.thread.start()

    def wait_for(self, text: str, count: int = 1, timeout_s: float = 60) -> None:
        """Wait until `text` is in `count` lines; fail after `timeout_s` (a generous deadline)."""
        deadline = time.monotonic() + timeout_s
        while sum(text in x for x in list(self.lines)) < count:
            assert time.monotonic() < deadline, f"{text!r} not seen: {''.join(self.lines)}"
            time.sleep(0.05)


def watch(url: str, token: str, wid: int, *extra: str) -> subprocess.Popen[str]:
    """`dcmeter window status WID --watch --interval 0.2` in a child process."""
    env = {**os.environ, "PYTHONPATH": str(ROOT), "DCMETER_COLLECTOR": url,
           "DCMETER_TOKEN": token, "COLUMNS": "160"}
    return subprocess.Popen(
        [sys.executable, "-m", "dcmeter", "window", "status", str(wid), "--watch",
         "--interval", "0.2", *extra], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env=env,
    )


def test_watch_ends_with_the_closed_result(collector: Collector) -> None:
    feed(collector)
    with collector.http() as eng:
        wid = eng.post(f"{collector.url}/api/v1/windows",
                       json={"kind": "general", "start": START}).json()["id"]
    token = collector.tokens["reader"]
    text, as_json = watch(collector.url, token, wid), watch(collector.url, token, wid, "--json")
    try:
        assert text.stdout is not None and as_json.stdout is not None
        shown, lines = Lines(text.stdout), Lines(as_json.stdout)
        shown.wait_for(f"Window {wid} · general · open", 2)
        lines.wait_for('"state": "open"', 2)
        with collector.http() as eng:
            r = eng.post(f"{collector.url}/api/v1/windows/{wid}/stop", json={"end": END})
            assert r.status_code == 200, r.text
        # Each watch ends by itself (no Ctrl-C) within a generous deadline, exit 0.
        assert text.wait(60) == 0 and as_json.wait(60) == 0
        shown.thread.join(10)
        lines.thread.join(10)
        err, json_err = text.stderr.read(), as_json.stderr.read()  # type: ignore[union-attr]
    finally:
        for p in (text, as_json):
            if p.poll() is None:
                p.kill()
                p.wait()
    out = "".join(shown.lines)
    # The last view is the closed window's stored result, and nothing comes after it.
    last = out[out.rindex(f"Window {wid} · general"):]
    assert last.startswith(f"Window {wid} · general · closed"), out[-3000:]
    assert "Stored result, revision 1" in last and "closed short of it" in last
    assert out.count("· closed") == 1 and out.count("· open") >= 2
    assert err == f"window {wid} is closed: the result above is final\n" == json_err
    views = [json.loads(x) for x in lines.lines if x.strip()]
    assert [v["window"]["state"] for v in views][-2:] == ["open", "closed"]
    assert views[-1]["revision"]["number"] == 1 and views[-1]["window"]["end"] == END


def test_watch_says_the_figures_are_stale(tmp_path: Path) -> None:
    (tmp_path / "site.toml").write_text(SITE_TOML)
    store = Store(tmp_path / "c.sqlite")
    app = create_app(store, Ingest(store, {}, 1 << 20), load_site(tmp_path / "site.toml"))
    token = create_token(store, "reader")[1]
    _, eng = create_token(store, "engineer")
    proc = None
    try:
        with serve(app) as url:
            wid = httpx.post(f"{url}/api/v1/windows", json={"kind": "general", "start": START},
                             headers={"Authorization": f"Bearer {eng}"}).json()["id"]
            proc = watch(url, token, wid)
            assert proc.stdout is not None
            shown = Lines(proc.stdout)
            shown.wait_for(f"Window {wid} · general · open")
            seen = time.time()
        # The collector is gone: the last figures stay, marked with when they were fetched.
        shown.wait_for("unreachable", 3)
        note = re.compile(r"(\d\d:\d\d:\d\d) collector \S+ unreachable.*; retrying; the figures"
                          r" shown are from (\d\d:\d\d:\d\d), (\d+) s ago")
        shown.wait_for("s ago", 10)  # ~0.2 s apart: some are a second or more after
        notes = [m for x in list(shown.lines) if (m := note.search(x))]
        assert notes, "".join(shown.lines)[-2000:]
        assert {m[2] for m in notes} == {notes[0][2]}  # the same fetch throughout
        # That fetch was just before the watch showed the open window (local clock).
        assert notes[0][2] in {time.strftime("%H:%M:%S", time.localtime(seen - k))
                               for k in range(30)}, notes[0][0]
        shown.wait_for("unreachable", 10)
        ago = [int(m[3]) for x in list(shown.lines) if (m := note.search(x))]
        assert ago == sorted(ago) and ago[-1] >= 1, ago  # counts up while it stays down
        assert f"Window {wid} · general · open" in "".join(shown.lines[-40:])
    finally:
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
            proc.communicate(timeout=20)
        store.close()
    assert proc.returncode == 0


def test_tokens_through_the_cli_on_a_real_store(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.toml"
    cfg.write_text('[collector]\nstore = "c.sqlite"\nsite = "site.toml"\n')
    (tmp_path / "site.toml").write_text(SITE_TOML)
    made = dcmeter("collector", "token", "create", "--role", "engineer", "--name", "alice",
                   "-c", str(cfg))
    assert made.returncode == 0, made.stderr
    token = made.stdout.strip()
    assert made.stdout == token + "\n" and token.startswith("dcm_") and len(token) > 40
    assert "'alice' (role engineer) created" in made.stderr and token not in made.stderr
    reader = dcmeter("collector", "token", "create", "--role", "reader", "-c", str(cfg))
    assert reader.returncode == 0 and "'reader-1'" in reader.stderr
    dup = dcmeter("collector", "token", "create", "--role", "reader", "--name", "alice",
                  "-c", str(cfg))
    assert dup.returncode == 2 and "'alice' exists" in dup.stderr and dup.stdout == ""
    bad = dcmeter("collector", "token", "create", "--role", "admin", "-c", str(cfg))
    assert bad.returncode == 2 and "invalid choice: 'admin'" in bad.stderr
    listed = dcmeter("collector", "token", "list", "-c", str(cfg), env={"COLUMNS": "120"})
    assert listed.returncode == 0 and "alice" in listed.stdout and "reader-1" in listed.stdout
    assert "engineer" in listed.stdout and token not in listed.stdout
    assert token_hash(token) not in listed.stdout

    raw = b"".join(p.read_bytes() for p in tmp_path.glob("c.sqlite*"))
    assert token.encode() not in raw and token_hash(token).encode() in raw

    # The collector reads tokens from the store: a token revoked on the command line stops
    # working at once for a collector that is running on the same file.
    store = Store(tmp_path / "c.sqlite")
    app = create_app(store, Ingest(store, {}, 1 << 20), load_site(tmp_path / "site.toml"))
    try:
        with serve(app) as url:
            headers = {"Authorization": f"Bearer {token}"}
            assert httpx.post(f"{url}/api/v1/windows", json={"kind": "ai"},
                              headers=headers).status_code == 201
            gone = dcmeter("collector", "token", "revoke", "alice", "-c", str(cfg))
            assert gone.returncode == 0 and "'alice' revoked" in gone.stderr
            assert httpx.get(f"{url}/api/v1/windows", headers=headers).status_code == 401
    finally:
        store.close()
    again = dcmeter("collector", "token", "revoke", "alice", "-c", str(cfg))
    assert again.returncode == 1 and "no token named 'alice'" in again.stderr
    left = dcmeter("collector", "token", "list", "-c", str(cfg), env={"COLUMNS": "120"})
    assert "alice" not in left.stdout and "reader-1" in left.stdout
