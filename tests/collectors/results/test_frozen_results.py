"""Frozen results (issue 13, item 5): a closed window's result and report stay byte-identical
through late batches, a changed site file and a restart; re-evaluation is an engineer's act
that keeps every revision readable. Real collectors (`dcmeter.collectors.commands.cli.build`) on real sockets,
on the `--store` backend."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import SITE_TOML, free_port, running
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from structlog.testing import capture_logs

import dcmeter
from dcmeter.agent import pubkey, wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.cli.main import main
from dcmeter.collectors.commands import cli as collector_cli
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339, rfc3339
from dcmeter.collectors.results.windows import window_result
from dcmeter.collectors.storage import db as dbm
from dcmeter.collectors.storage.store import MIGRATIONS, Store
from dcmeter.collectors.web.auth import create_token

T0 = parse_rfc3339("2026-03-01T00:00:00Z")
END = T0 + 2 * 3600
ENERGY = MetricSpec("energy_import_kwh", "kWh", "counter")
SOURCES = [
    SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total", "kind": "meter"},
               0.005),
    SourceInfo("meter-it", "modbus", "127.0.0.1:502/2", {"point": "it_pdu", "kind": "meter"},
               0.005),
]
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
CT = {"content-type": "application/x-msgpack"}
# The site file with a typo in the total meter's id and a green source no agent reports.
TYPO_SITE = SITE_TOML.replace('total = ["meter-total"]', 'total = ["meter-totl"]') \
    + 'green = ["pv-roof"]\n'
UNKNOWN = "site file names a source the store has never seen"


class Agent:
    """agent-1: one batch a minute, two kWh counters: total 90 kW and IT 60 kW (1.5 kWh and
    1 kWh a minute, exact in binary), chained."""

    def __init__(self) -> None:
        self.seq, self.prev = 0, GENESIS

    def batch(self, minute: int, synced: bool = True) -> bytes:
        """The sealed batch of `minute` after T0 (readings 1000 + 1.5 m, 500 + 1.0 m kWh)."""
        self.seq += 1
        ts = int((T0 + 60 * minute) * 1e9)
        arrays = wire.pack_arrays([ts, ts], [0, 1], [0, 0],
                                  [1000.0 + 1.5 * minute, 500.0 + 1.0 * minute])
        b = Batch("agent-1", self.seq, self.prev, ts, ClockStatus(synced=synced,
                  max_error_s=0.01), SOURCES, [MetricEntry(ENERGY)], *arrays)
        body = wire.encode_body(b)
        self.prev = wire.batch_hash(body)
        return wire.envelope(body, KEY)


def post(url: str, agent: Agent, minutes: range, synced: bool = True) -> None:
    """Ship one batch per minute; each must be stored."""
    with httpx.Client(headers=CT) as http:
        for m in minutes:
            r = http.post(f"{url}/api/v1/batches", content=agent.batch(m, synced))
            assert r.status_code == 200 and r.json()["status"] == "stored", r.text


@pytest.fixture
def site_dir(tmp_path: Path, store_location: Callable[[str], Path | str]) -> Path:
    """A collector config naming the test's store, agent-1's key and site.toml (as given)."""
    (tmp_path / "site.toml").write_text(SITE_TOML)
    (tmp_path / "collector.toml.in").write_text(
        f'[collector]\nhost = "127.0.0.1"\nport = PORT\nstore = "{store_location("c")}"\n'
        f'site = "site.toml"\n[[agents]]\nid = "agent-1"\n'
        f'public_key = "{pubkey.public_text(KEY.public_key())}"\n'
    )
    return tmp_path


@contextmanager
def collector(where: Path) -> Iterator[tuple[str, Store]]:
    """`dcmeter collector serve`'s collector built from `where`'s config, on a free port."""
    cfg = where / "collector.toml"
    cfg.write_text((where / "collector.toml.in").read_text().replace("PORT", str(free_port())))
    server, store = collector_cli.build(cfg)
    try:
        with running(server) as url:
            yield url, store
    finally:
        store.close()


def tokens(store: Store) -> dict[str, str]:
    """An engineer's and a reader's bearer token, made in the store (they survive restarts)."""
    return {role: create_token(store, role, f"{role}-x")[1] for role in ("engineer", "reader")}


def as_role(token: str, url: str) -> httpx.Client:
    return httpx.Client(base_url=f"{url}/api/v1",
                        headers={"Authorization": f"Bearer {token}"}, timeout=60)


def reads(http: httpx.Client, wid: int, query: str = "") -> tuple[bytes, bytes, bytes, bytes]:
    """The result and the report (HTML en, zh, JSON) of window `wid`, as bytes."""
    out = []
    w = f"/windows/{wid}"
    for path in (w, f"{w}/report?lang=en", f"{w}/report?lang=zh", f"{w}/report?format=json"):
        sep = ("&" if "?" in path else "?") if query else ""
        r = http.get(path + sep + query)
        assert r.status_code == 200, r.text
        out.append(r.content)
    return out[0], out[1], out[2], out[3]


def test_closed_window_stays_identical_through_late_batches_site_change_and_restart(
    site_dir: Path,
) -> None:
    agent = Agent()
    site_v1 = hashlib.sha256((site_dir / "site.toml").read_bytes()).hexdigest()
    with collector(site_dir) as (url, store):
        tok = tokens(store)
        post(url, agent, range(-15, 121))  # T0 - 15 min .. END: 136 batches
        with as_role(tok["engineer"], url) as eng:
            wid = eng.post("/windows", json={"kind": "infrastructure", "start": rfc3339(T0)}).json()["id"]
            stopped = eng.post(f"/windows/{wid}/stop", json={"end": rfc3339(END)})
            assert stopped.status_code == 200, stopped.text
            assert stopped.json()["closed_by"] == "engineer-x"
            assert stopped.json()["revision"] == 1
            first = reads(eng, wid)
        r1 = json.loads(first[0])
        # By hand: 2 h; total 1000 -> 1180 kWh, IT 500 -> 620 kWh; PUE 180 / 120 = 1.5.
        assert r1["energy_kwh"]["total"] == pytest.approx(180.0, abs=1e-9)
        assert r1["energy_kwh"]["it"] == pytest.approx(120.0, abs=1e-9)
        assert r1["pue"] == pytest.approx(1.5, abs=1e-12) and r1["quality"]["valid"] is True
        # Batches sealed in [T0 - 15 min, END + 15 min] so far: minutes -15..120.
        assert r1["quality"]["chain"]["agents"]["agent-1"]["batches"] == 136
        assert r1["window"]["closed_by"] == "engineer-x"
        rev = r1["revision"]
        assert (rev["number"], rev["reason"], rev["by"]) == (1, "window stopped", "engineer-x")
        assert rev["site_sha256"] == site_v1
        assert rev["software"] == f"dcmeter {dcmeter.__version__}"
        assert abs(parse_rfc3339(rev["computed_at"]) - time.time()) < 600
        assert "engineer-x" in first[1].decode() and site_v1 in first[1].decode()

        # Batches with samples in the window's margin arrive, sealed by an unsynced clock.
        post(url, agent, range(121, 136), synced=False)
        with as_role(tok["reader"], url) as rd:
            assert reads(rd, wid) == first
        # What a fresh computation would say now: the frozen result really is frozen.
        w = store.window(wid)
        assert w is not None
        live = window_result(store, collector_site(site_dir), w, 0)
        assert live["quality"]["chain"]["agents"]["agent-1"]["batches"] == 151
        assert live["quality"]["clock"]["agents"]["agent-1"]["unsynced"] == 15

    # The site file changes (a typo, a green source nobody reports); the collector restarts.
    (site_dir / "site.toml").write_text(TYPO_SITE)
    site_v2 = hashlib.sha256(TYPO_SITE.encode()).hexdigest()
    with capture_logs() as logs, collector(site_dir) as (url, store):
        told = [e for e in logs if e["event"] == UNKNOWN]
        assert sorted(e["source"] for e in told) == ["meter-totl", "pv-roof"]
        assert {e["log_level"] for e in told} == {"warning"}
        with as_role(tok["reader"], url) as rd, as_role(tok["engineer"], url) as eng:
            assert reads(rd, wid) == first
            assert rd.get(f"/windows/{wid}/revisions").json() == [rev]

            # Re-evaluating is an engineer's act, with a reason, on a closed window.
            refused = rd.post(f"/windows/{wid}/reevaluate", json={"reason": "try"})
            assert refused.status_code == 403
            assert eng.post(f"/windows/{wid}/reevaluate", json={}).status_code == 422
            assert eng.post(f"/windows/{wid}/reevaluate", json={"reason": "  "}).status_code == 422
            other = eng.post("/windows", json={"kind": "infrastructure"}).json()["id"]
            assert eng.post(f"/windows/{other}/reevaluate", json={"reason": "x"}).status_code == 409
            assert eng.get(f"/windows/{other}?revision=1").status_code == 404
            assert eng.get(f"/windows/{other}/revisions").json() == []
            assert rd.get(f"/windows/{wid}/revisions").json() == [rev]  # nothing stored by refusals

            why = "site file edited: check the total meter"
            again = eng.post(f"/windows/{wid}/reevaluate", json={"reason": why})
            assert again.status_code == 201, again.text
            r2 = again.json()
            assert r2["revision"]["number"] == 2 and r2["revision"]["reason"] == why
            assert r2["revision"]["by"] == "engineer-x"
            assert r2["revision"]["site_sha256"] == site_v2
            assert r2["quality"]["valid"] is False and r2["pue"] is None  # meter-totl: none
            assert r2["quality"]["chain"]["agents"]["agent-1"]["batches"] == 151
            assert rd.get(f"/windows/{wid}").json() == r2  # the latest by default
            assert reads(rd, wid, "revision=1") == first  # the first, still as it was
            assert [r["reason"] for r in rd.get(f"/windows/{wid}/revisions").json()] == [
                "window stopped", why]
            assert rd.get(f"/windows/{wid}?revision=3").status_code == 404
            listed = {w["id"]: w for w in rd.get("/windows").json()}
            assert listed[wid]["revision"] == 2 and listed[wid]["closed_by"] == "engineer-x"


def collector_site(where: Path) -> Any:
    from dcmeter.collectors.evaluation.site import load_site

    return load_site(where / "site.toml")


def test_window_closed_before_the_upgrade_is_frozen_on_first_read(
    site_dir: Path, store_location: Callable[[str], Path | str]
) -> None:
    # A store at schema version 6 (before results were stored) with a closed window.
    conn = dbm.connect(store_location("c"))
    dbm.migrate(conn, MIGRATIONS[:6], 0)
    with conn.transaction():
        conn.execute("INSERT INTO windows(kind, start_ns, end_ns, note, created_ns, opened_by)"
                     " VALUES (?,?,?,?,?,?)",
                     ("infrastructure", int(T0 * 1e9), int(END * 1e9), "old", 0, "someone"))
    conn.close()
    agent = Agent()
    with collector(site_dir) as (url, store):
        tok = tokens(store)
        post(url, agent, range(-15, 136))
        (w,) = store.windows()
        assert w.closed_by is None and w.closed_ns is None
        with as_role(tok["reader"], url) as rd:
            first = reads(rd, w.id)
            r = json.loads(first[0])
            assert r["revision"]["reason"] == "frozen on first read after upgrade"
            assert r["revision"]["number"] == 1 and r["revision"]["by"] is None
            assert r["pue"] == pytest.approx(1.5, abs=1e-12)
            post(url, agent, range(136, 140))
            assert reads(rd, w.id) == first
            assert len(rd.get(f"/windows/{w.id}/revisions").json()) == 1


def test_reevaluate_command(
    site_dir: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with collector(site_dir) as (url, store):
        tok = tokens(store)
        post(url, Agent(), range(-15, 136))
        with as_role(tok["engineer"], url) as eng:
            wid = eng.post("/windows", json={"kind": "infrastructure", "start": rfc3339(T0)}).json()["id"]
            eng.post(f"/windows/{wid}/stop", json={"end": rfc3339(END)}).raise_for_status()
        args = ["window", "reevaluate", str(wid), "--collector", url]
        monkeypatch.setenv("DCMETER_TOKEN", tok["reader"])
        assert main([*args, "--reason", "by a reader"]) == 1
        assert "403" in capsys.readouterr().err
        monkeypatch.setenv("DCMETER_TOKEN", tok["engineer"])
        with pytest.raises(SystemExit) as usage:
            main(args)  # --reason is required
        assert usage.value.code == 2
        capsys.readouterr()
        with capture_logs() as logs:  # the collector's log, not the command's output
            assert main([*args, "--reason", "meter recalibrated"]) == 0
        out = capsys.readouterr().out
        (logged,) = [e for e in logs if e["event"] == "window re-evaluated"]
        assert (logged["window"], logged["revision"], logged["reason"], logged["by"]) == (
            wid, 2, "meter recalibrated", "engineer-x")
        assert out.startswith(f"window {wid}: revision 2 stored (valid), site file sha256 ")
        assert f"dcmeter {dcmeter.__version__}" in out
        assert main(["window", "status", str(wid), "--collector", url]) == 0
        assert "Stored result, revision 2 (meter recalibrated)" in capsys.readouterr().out
        assert [r.info.reason for r in (store.revision(wid, 1), store.revision(wid, 2))
                if r is not None] == ["window stopped", "meter recalibrated"]
