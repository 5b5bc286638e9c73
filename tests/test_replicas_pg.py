"""Three collectors on one PostgreSQL store behind HAProxy (issue 20, item 1; docs/scaling.md).

`dcmeter collector serve` three times (one config, one store), HAProxy in front (round robin,
health-checked on /api/v1/health), in-process agents ticking each second through the balancer,
a general window opened through it, one collector SIGKILLed and restarted mid-window, the
window stopped through the balancer. Then: every sample each agent sealed is in the store
exactly once, the chains verify (`dcmeter collector verify`), and the result the replicas
froze equals the one computed over the same store by one store reading raw samples (no
folds): the folds moved by three writers are the folds one writer would have kept.

Runs only with `--store=postgresql` (.ci/run's PostgreSQL pass); needs haproxy (Debian).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import StoreLocations, free_port
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import pubkey, wire
from dcmeter.agent.daemon import Agent
from dcmeter.collectors.evaluation.site import load_site
from dcmeter.collectors.results.windows import window_result
from dcmeter.collectors.storage.store import Store
from tests.collectors.results.test_window_folds import assert_same
from tests.peers.agent import agent_of, polling
from tests.peers.processes import DCMETER, daemon, stop, wait_for
from tests.peers.stack import stack_env

# The count: 50 agents at 1 s (about a minute on CI's two cores, docs/scaling.md);
# DCMETER_REPLICA_AGENTS=N runs another count.
AGENTS = int(os.environ.get("DCMETER_REPLICA_AGENTS", "50"))
REPLICAS = 3
CLI_TIMEOUT_S = 120.0


@pytest.fixture
def pg_url(request: pytest.FixtureRequest, tmp_path: Path,
           store_locations: StoreLocations) -> Iterator[str]:
    """A new database on the session's PostgreSQL server (skip on SQLite: one collector
    per SQLite file is the design there)."""
    if request.config.getoption("--store") != "postgresql":
        pytest.skip("replicas share a PostgreSQL store: runs with --store=postgresql")
    if shutil.which("haproxy") is None:
        pytest.fail("haproxy not installed: apt-get install haproxy (.ci/run's PEERS)",
                    pytrace=False)
    url = store_locations.new(tmp_path / "unused.sqlite")
    assert isinstance(url, str)
    yield url
    store_locations.drop(url)


def _site(sources: list[str]) -> str:
    """A general window over the agents' hosts: their CPU load folds (store_folds.py)."""
    return (
        '[site]\nname = "replicas"\nregion = "east-2023"\n\n[energy]\ntotal = ["host-0"]\nit = ["host-1"]\n\n'
        "[general]\nmethod = 2\n\n[[general.groups]]\nname = \"hosts\"\nkind = \"compute\"\n"
        f'count = {len(sources)}\nrating = 20000\nrating_source = "test"\n'
        f"sources = {json.dumps(sources)}\n"
    )


def _haproxy_cfg(port: int, replicas: list[int]) -> str:
    servers = "".join(f"    server c{i} 127.0.0.1:{p} check\n" for i, p in enumerate(replicas))
    return (
        "global\n    maxconn 512\n"
        "defaults\n    mode http\n    timeout connect 2s\n    timeout client 60s\n"
        "    timeout server 60s\n    retries 2\n    option redispatch\n"
        "frontend f\n    bind 127.0.0.1:" + str(port) + "\n    default_backend c\n"
        "backend c\n    balance roundrobin\n    option httpchk GET /api/v1/health\n"
        "    default-server inter 300ms fall 2 rise 2\n" + servers
    )


@contextlib.contextmanager
def _capturing(agent: Agent, sealed: dict[int, bytes]) -> Iterator[None]:
    """Record every envelope the agent's buffer hands its shipper, by seq: what it sealed."""
    pending = agent.buffer.pending

    def spy(limit: int = 16) -> list[tuple[int, bytes]]:
        rows = pending(limit)
        for seq, raw in rows:
            sealed.setdefault(int(seq), bytes(raw))
        return rows

    agent.buffer.pending = spy  # type: ignore[method-assign]
    yield


def _samples_of(raws: dict[int, bytes]) -> Counter[tuple[str, str, int, float]]:
    out: Counter[tuple[str, str, int, float]] = Counter()
    for raw in raws.values():
        body, _, _ = wire.open_signed(raw)
        b = wire.decode_body(body)
        for ts, s, m, v in zip(b.ts, b.src, b.met, b.val, strict=True):
            out[(b.sources[s].id, b.metrics[m].spec.name, int(ts), float(v))] += 1
    return out


def test_three_collectors_one_store_one_killed_mid_window(
    pg_url: str, tmp_path: Path
) -> None:
    env = stack_env()
    keys = {f"agent-{i}": Ed25519PrivateKey.generate() for i in range(AGENTS)}
    (tmp_path / "agents").mkdir()
    for name, key in keys.items():
        (tmp_path / "agents" / f"{name}.pub").write_text(
            pubkey.public_text(key.public_key()) + "\n")
    hosts = [f"host-{i}" for i in range(AGENTS)]
    (tmp_path / "site.toml").write_text(_site(hosts))
    ports = [free_port() for _ in range(REPLICAS)]
    cfgs = []
    for i, port in enumerate(ports):
        cfg = tmp_path / f"collector-{i}.toml"
        cfg.write_text(f'[collector]\nhost = "127.0.0.1"\nport = {port}\nstore = "{pg_url}"\n'
                       'site = "site.toml"\nkeys_dir = "agents"\n')
        cfgs.append(cfg)
    logs = [tmp_path / f"collector-{i}.log" for i in range(REPLICAS)]
    procs: dict[int, subprocess.Popen[bytes]] = {}
    lb_port = free_port()
    (tmp_path / "haproxy.cfg").write_text(_haproxy_cfg(lb_port, ports))
    lb_log = tmp_path / "haproxy.log"
    lb = None
    url = f"http://127.0.0.1:{lb_port}"

    def alive() -> list[subprocess.Popen[bytes]]:
        return [*procs.values(), *([lb] if lb else [])]

    try:
        for i in range(REPLICAS):  # one after another: the first migrates the store
            procs[i] = daemon(["collector", "serve", "-c", str(cfgs[i])], logs[i], env)
            wait_for(f"collector {i}", lambda i=i: httpx.get(
                f"http://127.0.0.1:{ports[i]}/api/v1/health").is_success,
                list(procs.values()), logs, timeout=CLI_TIMEOUT_S)
        made = subprocess.run([*DCMETER, "collector", "token", "create", "--role", "engineer",
                               "-c", str(cfgs[0])], capture_output=True, text=True, env=env,
                              cwd=tmp_path, timeout=CLI_TIMEOUT_S)
        assert made.returncode == 0, made.stderr
        auth = {"Authorization": f"Bearer {made.stdout.strip()}"}
        with lb_log.open("wb") as f:
            lb = subprocess.Popen(["haproxy", "-db", "-f", str(tmp_path / "haproxy.cfg")],
                                  stdout=f, stderr=subprocess.STDOUT)
        wait_for("haproxy", lambda: httpx.get(f"{url}/api/v1/health").is_success,
                 alive(), [*logs, lb_log])

        agents: list[Agent] = []
        sealed: dict[str, dict[int, bytes]] = {}
        with contextlib.ExitStack() as running:
            for i, (name, key) in enumerate(keys.items()):
                home = tmp_path / name
                home.mkdir()
                a = agent_of(home, url, key, [{"id": hosts[i], "type": "host"}], name)
                agents.append(a)
                sealed[name] = {}
                running.enter_context(_capturing(a, sealed[name]))
                running.enter_context(polling(a, gap_s=1.0))

            def stored() -> int:
                return int(httpx.get(f"{url}/api/v1/health").json()["batches"])

            # Every agent's first batch is in before the window opens.
            wait_for("first batches", lambda: all(len(s) > 0 for s in sealed.values())
                     and stored() >= AGENTS, alive(), [*logs, lb_log], timeout=CLI_TIMEOUT_S)
            opened = httpx.post(f"{url}/api/v1/windows", headers=auth,
                                json={"kind": "general"}, timeout=30)
            assert opened.status_code == 201, opened.text
            wid = opened.json()["id"]
            mark = sum(len(s) for s in sealed.values())
            wait_for("batches in the window", lambda: sum(len(s) for s in sealed.values())
                     >= mark + 2 * AGENTS, alive(), [*logs, lb_log], timeout=CLI_TIMEOUT_S)
            # A replica lost mid-window: SIGKILL, no drain; then restarted on its port.
            procs[1].send_signal(signal.SIGKILL)
            procs.pop(1).wait(30)
            mark = sum(len(s) for s in sealed.values())
            wait_for("batches while one replica is down", lambda: sum(
                len(s) for s in sealed.values()) >= mark + 2 * AGENTS, alive(),
                [*logs, lb_log], timeout=CLI_TIMEOUT_S)
            logs[1] = tmp_path / "collector-1b.log"
            procs[1] = daemon(["collector", "serve", "-c", str(cfgs[1])], logs[1], env)
            wait_for("collector 1 again", lambda: httpx.get(
                f"http://127.0.0.1:{ports[1]}/api/v1/health").is_success, alive(),
                [*logs, lb_log], timeout=CLI_TIMEOUT_S)
            mark = sum(len(s) for s in sealed.values())
            wait_for("batches after the restart", lambda: sum(
                len(s) for s in sealed.values()) >= mark + 2 * AGENTS, alive(),
                [*logs, lb_log], timeout=CLI_TIMEOUT_S)
            # Any replica answers the open window, and /metrics.
            for p in ports:
                got = httpx.get(f"http://127.0.0.1:{p}/api/v1/windows/{wid}", headers=auth,
                                timeout=60)
                assert got.status_code == 200, got.text
                assert httpx.get(f"http://127.0.0.1:{p}/metrics", timeout=60).is_success
            stopped = httpx.post(f"{url}/api/v1/windows/{wid}/stop", headers=auth, json={},
                                 timeout=120)
            assert stopped.status_code == 200, stopped.text
            # The agents go on until everything they sealed is acknowledged (polling's
            # exit joins them; then nothing may be pending).
            wait_for("buffers drained", lambda: all(
                not a.buffer.pending(1) for a in agents), alive(), [*logs, lb_log],
                timeout=CLI_TIMEOUT_S)
        # (polling's exit closed the buffers: every tick ends by shipping, so `sealed` holds
        # every batch sealed, including the last tick's.)

        # Every sample each agent sealed, stored exactly once (a duplicate is an extra count).
        store = Store(pg_url)
        try:
            for name, raws in sealed.items():
                assert sorted(raws) == list(range(1, max(raws) + 1)), f"{name}: seqs missing"
                rows = store.samples(name)
                have = Counter((str(r[0]), str(r[1]), int(r[2]), float(r[3])) for r in rows)
                assert have == _samples_of(raws), f"{name}: store differs from what it sealed"
                seqs = [r["seq"] for r in store.batches(name)]
                assert seqs == sorted(raws), f"{name}: batches stored differ from sealed"
            every = store.batches()
            assert all(b["chain"] in ("ok", "") for b in every), "chain not ok"
            n_batches, n_samples = len(every), sum(int(b["samples"]) for b in every)
            assert n_batches == sum(len(r) for r in sealed.values())
            # One store, raw samples only: the result one collector computes.
            w = store.window(wid)
            assert w is not None and w.end_ns is not None
            site = load_site(tmp_path / "site.toml")
            alone = window_result(store, site, w, time.time_ns(), use_folds=False)
            folded = window_result(store, site, w, time.time_ns(), use_folds=True)
        finally:
            store.close()
        verify = subprocess.run([*DCMETER, "collector", "verify", "-c", str(cfgs[2])],
                                capture_output=True, text=True, env=env, cwd=tmp_path,
                                timeout=CLI_TIMEOUT_S)
        assert verify.returncode == 0, verify.stdout + verify.stderr
        # The folds three writers moved are those the raw samples give.
        _same_result(folded, alone)
        frozen = httpx.get(f"{url}/api/v1/windows/{wid}", headers=auth, timeout=60)
        assert frozen.status_code == 200 and frozen.json()["revision"]["number"] == 1
        # Each replica, asked alone now that the agents are stopped, computes that result
        # (the stop's revision 1 predates samples that came in after it, within the margin).
        for p in ports:
            again = httpx.post(f"http://127.0.0.1:{p}/api/v1/windows/{wid}/reevaluate",
                               headers=auth, json={"reason": "replica check"}, timeout=120)
            assert again.status_code == 201, again.text
            _same_result(again.json(), alone)
        # Any replica answers the same report and the same ingest totals: all the store's.
        reports, totals = [], []
        for p in ports:
            r = httpx.get(f"http://127.0.0.1:{p}/api/v1/windows/{wid}/report",
                          params={"format": "json"}, headers=auth, timeout=120)
            assert r.status_code == 200, r.text
            reports.append(r.json())
            text = httpx.get(f"http://127.0.0.1:{p}/metrics", timeout=60).text
            totals.append([line for line in text.splitlines() if line.startswith(
                ("dcmeter_ingest_batches_accepted_total", "dcmeter_ingest_samples_accepted"))])
        assert reports[0] == reports[1] == reports[2]
        want = [f"dcmeter_ingest_batches_accepted_total {float(n_batches)}",
                f"dcmeter_ingest_samples_accepted_total {float(n_samples)}"]
        assert totals == [want] * REPLICAS, (totals, want)
    finally:
        if lb is not None:
            stop(lb)
        for p in procs.values():
            stop(p)


def _same_result(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Every block of the result `want` equal in `got` (which may add its revision): as the
    folds' own test compares a folded result with the raw one (floats to 1e-9 relative, the
    median sampling interval to 1 ms)."""
    plain = json.loads(json.dumps(got, default=str))
    for k, v in json.loads(json.dumps(want, default=str)).items():
        assert_same(plain.get(k), v, k)
