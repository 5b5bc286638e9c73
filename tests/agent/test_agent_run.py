"""The agent against real peers: `once --json`, and the daemon with a dead and a slow target."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path

from conftest import ROOT, Collector, MeterThread, free_port
from cryptography.hazmat.primitives import serialization

from dcmeter.collectors.evaluation.jsonl import parse_rfc3339


def meter_values() -> dict[str, float]:
    return {"power_w": 1234.5, "energy_import_kwh": 42.25, "energy_export_kwh": 0.0,
            "frequency_hz": 50.0}


def slow_values() -> dict[str, float]:
    time.sleep(2.0)  # a meter that answers too late for its 0.5 s budget
    return meter_values()


def run_cli(*args: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "dcmeter", *args], capture_output=True,
                          text=True, env=env, timeout=60)


def test_once_json_prints_one_sample_per_line(tmp_path: Path, meters: MeterThread) -> None:
    port = meters.add("eastron_sdm630", meter_values)
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[agent]\nid = "a"\nstate_dir = "{tmp_path / "state"}"\n'
        f'[[sources]]\nid = "meter-total"\ntype = "modbus"\nhost = "127.0.0.1"\nport = {port}\n'
        'profile = "eastron_sdm630"\naccuracy = 0.005\nlabels = { point = "total" }\n'
    )
    before = time.time()
    r = run_cli("agent", "once", "-c", str(cfg), "--json")
    assert r.returncode == 0, r.stderr
    recs = [json.loads(line) for line in r.stdout.splitlines()]
    by_metric = {x["metric"]: x for x in recs}
    assert set(by_metric) == {"power_w", "energy_import_kwh", "energy_export_kwh", "frequency_hz"}
    e = by_metric["energy_import_kwh"]
    assert {"ts", "source", "metric", "value", "unit", "kind", "labels"} <= set(e)
    assert e["value"] == 42.25 and e["unit"] == "kWh" and e["kind"] == "counter"
    assert e["source"] == "meter-total" and e["labels"] == {"point": "total", "kind": "meter"}
    assert e["ts"].endswith("Z") and before <= parse_rfc3339(e["ts"]) <= time.time()
    assert by_metric["power_w"]["value"] == 1234.5 and by_metric["power_w"]["kind"] == "gauge"
    assert not (tmp_path / "state" / "buffer.sqlite").exists()  # nothing buffered


def test_daemon_goes_on_past_dead_and_slow_targets(
    tmp_path: Path, collector: Collector, meters: MeterThread
) -> None:
    good = meters.add("eastron_sdm630", meter_values)
    slow_meters = MeterThread()  # its own loop, so the slow meter cannot stall the good one
    try:
        slow = slow_meters.add("eastron_sdm630", slow_values)
        state = tmp_path / "state"
        state.mkdir()
        (state / "agent.key").write_bytes(collector.keys["agent-1"].private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption()))
        src = '[[sources]]\nid = "{}"\ntype = "modbus"\nhost = "127.0.0.1"\nport = {}\n' \
              'profile = "eastron_sdm630"\ntimeout_s = 0.5\n'
        cfg = tmp_path / "agent.toml"
        cfg.write_text(
            f'[agent]\nid = "agent-1"\ninterval_s = 1\nstate_dir = "{state}"\n'
            f'[collector]\nurl = "{collector.url}"\n'
            + src.format("good", good) + src.format("dead", free_port())
            + src.format("slow", slow)
        )
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        proc = subprocess.Popen([sys.executable, "-m", "dcmeter", "agent", "run", "-c", str(cfg)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
        # Until four ticks of the good meter are stored (a deadline, not a count in a fixed
        # time: on a loaded machine the agent's start alone can take seconds).
        deadline = time.monotonic() + 90
        while len({int(ts // 10**9) for src, metric, ts, _ in collector.store.samples()
                   if metric == "power_w"}) < 4:
            assert proc.poll() is None, proc.communicate()[1]
            assert time.monotonic() < deadline, "four ticks of the good meter never arrived"
            time.sleep(0.2)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=15)
    finally:
        slow_meters.close()
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    failed = [e for e in events if e["event"] == "target failed"]
    assert sorted(e["source"] for e in failed) == ["dead", "slow"]  # once each, not per tick
    assert "0.5 s" in next(e["reason"] for e in failed if e["source"] == "slow")
    ticks: dict[int, list[float]] = defaultdict(list)
    for source, metric, ts, _ in collector.store.samples():
        assert source == "good"
        if metric == "power_w":
            ticks[int(ts // 10**9)].append(ts / 1e9)
    assert len(ticks) >= 4  # the good meter was read on every tick despite the others
    for second, stamps in ticks.items():
        # aligned to whole seconds: read shortly after the tick, never held up by the slow one
        assert all(0 <= t - second < 0.45 for t in stamps), stamps
