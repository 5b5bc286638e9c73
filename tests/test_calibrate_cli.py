"""`dcmeter calibrate run` end to end: a plan file, the command driver, a real collector and a
real agent reading two simulated BMCs (the instrument and the reference), the points table
printed and the closed record written; a bad plan file is one line and exit 2."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

from conftest import ROOT, Collector

from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.sim.bmc import PowerReading, SimBmc
from dcmeter.sim.loop import LoopThread
from tests.peers.agent import agent_of, polling

PLAN = """
[calibration]
quantity = "power"
repetitions = 2
dwell_s = 1.0
settle_s = 0.3
sync_s = 0.1
environment = "23 °C"

[instrument]
kind = "series"
source = "bmc-1"
metric = "power_w"

[reference]
kind = "series"
source = "bmc-2"
metric = "power_w"
name = "reference BMC"

[driver]
kind = "command"

[[points]]
label = "400 W"
command = ["true"]
"""


def dcmeter(*args: str, token: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DCMETER_TOKEN": token, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", "dcmeter", *args], capture_output=True,
                          text=True, env=env, cwd=ROOT, timeout=timeout)


def polled(collector: Collector, source: str = "bmc-1") -> list[float]:
    """The times of a BMC's power samples stored so far (s)."""
    return sorted(float(t) for s in collector.store.series([source], 0, 2**62)
                  if s.metric == "power_w" for t in s.ts)


def test_calibrate_run_with_the_command_driver(collector: Collector, tmp_path: Path) -> None:
    """bmc-1 reports 412 W, bmc-2 400 W: each dwell's means are 412 and 400, so E = 12 W,
    E/R̄ = 0.03 = 3 %, within the 5 % MPE (20 W): pass."""
    bmcs = [SimBmc(lambda w=w: PowerReading(w, w, w, w), password="pw") for w in (412.0, 400.0)]
    with LoopThread() as loop:
        ports = [loop.serve(b) for b in bmcs]
        agent = agent_of(tmp_path, collector.url, collector.keys["agent-1"], [
            {"id": f"bmc-{i + 1}", "type": "ipmi", "host": "127.0.0.1", "port": port,
             "username": "admin", "password": "pw", "timeout_s": 3}
            for i, port in enumerate(ports)])
        with polling(agent):
            (tmp_path / "plan.toml").write_text(PLAN)
            eng = collector.tokens["engineer"]
            started = dcmeter("calibrate", "start", str(tmp_path / "plan.toml"),
                              "--collector", collector.url, token=eng)
            assert started.returncode == 0, started.stderr
            cid = started.stdout.strip()
            # Repetition 1 by hand, over a dwell the agent is polling through; `run --id`
            # then drives only repetition 2.
            deadline = time.monotonic() + 60
            while min(len(polled(collector, b)) for b in ("bmc-1", "bmc-2")) < 5:
                assert time.monotonic() < deadline, "the agent shipped no samples"
                time.sleep(0.1)
            # Inside both BMCs' samples (an edge is read between samples, never past them;
            # the API's times are whole microseconds, a sample's nanoseconds).
            both = [polled(collector, b) for b in ("bmc-1", "bmc-2")]
            first, last = max(p[0] for p in both) + 1e-3, min(p[-2] for p in both)
            posted = dcmeter("calibrate", "reading", cid, "--point", "400 W", "--repetition",
                             "1", "--start", rfc3339(first), "--end", rfc3339(last),
                             "--collector", collector.url, token=eng)
            assert posted.returncode == 0 and "stored" in posted.stdout, posted.stderr
            done = dcmeter("calibrate", "run", str(tmp_path / "plan.toml"), "--id", cid,
                           "--collector", collector.url, "--wait-data", "60", "--json",
                           str(tmp_path / "record.json"), token=eng)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    assert "repetition 2: recorded" in done.stderr and "repetition 1" not in done.stderr
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["state"] == "closed" and record["issues"] == [], record["issues"]
    (point,) = record["points"]
    assert [r["valid"] for r in point["repetitions"]] == [True, True]
    assert (point["reference_mean"], point["indicated_mean"], point["error"]) == (400, 412, 12)
    assert point["statement"]["result"] == "pass" and record["statement"]["result"] == "pass"
    assert record["procedure"]["driver"] == "command"
    row = next(line for line in done.stdout.splitlines() if line.startswith("400 W"))
    # point (2 words), reference, indicated, error, relative error (2 words), U, statement
    assert row.split()[2:7] == ["400", "412", "12", "3", "%"] and row.split()[-1] == "pass"
    listed = dcmeter("calibrate", "list", "--collector", collector.url,
                     token=collector.tokens["reader"])
    assert listed.returncode == 0 and listed.stdout.split()[:2] == [str(record["id"]), "closed"]


def test_a_bad_plan_file_is_one_line_and_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(PLAN.replace("repetitions = 2", "repetitions = 0"))
    done = dcmeter("calibrate", "run", str(bad), "--collector", "http://127.0.0.1:9",
                   token="x")
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in done.stderr
    assert str(bad) in lines[0] and "calibration.repetitions" in lines[0] and "0" in lines[0]
    bad.write_text(PLAN.replace('quantity = "power"', 'quantity = "power"\nqty = 1'))
    done = dcmeter("calibrate", "start", str(bad), token="x")
    assert done.returncode == 2 and len(done.stderr.strip().splitlines()) == 1
    assert "unknown key" in done.stderr and "calibration.qty" in done.stderr
