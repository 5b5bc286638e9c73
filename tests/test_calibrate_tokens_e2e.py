"""Tokens/s calibrated end to end (issue 18): an AI window opened through the API, `dcmeter
calibrate run` (a subprocess) with the workload driver running
contrib/calibration/tokens_workload.py with a planted start-up delay, a real collector. The
framework's figure (tokens over its generation loop) is the reference; dcmeter's tokens/s of
the run (tokens over the whole run, start-up included) is the instrument, which therefore
reads low by start-up ÷ run length."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from conftest import ROOT, Collector
from test_calibrate_cli import dcmeter

from dcmeter.collectors.evaluation.jsonl import parse_rfc3339

WORKLOAD = ROOT / "contrib" / "calibration" / "tokens_workload.py"
STARTUP_S = 0.5
LOOP_S = 3.0  # each point's tokens / rate: 600 / 200 = 1200 / 400 = 3 s

PLAN = """
[calibration]
quantity = "inference"
repetitions = 2
dwell_s = 3.0
decision_rule = "simple"

[instrument]
kind = "run"
window = {window}

[reference]
kind = "workload"
name = "tokens_workload.py (its own tokens/s)"

[driver]
kind = "workload"
command = [{python}, {workload}, "--startup", "{startup}"]
model = "tokens-demo"

[[points]]
label = "200 tokens/s"
command = ["--tokens", "600", "--rate", "200"]

[[points]]
label = "400 tokens/s"
command = ["--tokens", "1200", "--rate", "400"]
"""


def test_tokens_calibration_shows_the_planted_startup(collector: Collector,
                                                      tmp_path: Path) -> None:
    """The run dcmeter times is T = start-up s (≥ 0.5 s: the planted sleep, plus the
    interpreter's start and exit) + the loop L (≥ 3 s: token N is due at N / rate); the
    framework divides by L alone. Indicated / reference − 1 = (N/T)/(N/L) − 1 = −s/(L + s).
    By hand, with s ≈ 0.5 + 0.1 (interpreter) and L = 3: −0.6/3.6 = −16.7 %. Bounds that hold
    on a busy machine yet fail if the start-up were not in the run (≈ 0 %) or the reference
    were taken from the run too: s ∈ [0.5, 2] and L ∈ [3, 4.5] give −s/(L + s) between
    −2/5 = −40 % and −0.5/5 = −10 %. Against ±1 % (seed 004) the simple rule says fail."""
    eng = collector.tokens["engineer"]
    with collector.http("engineer") as http:
        r = http.post(f"{collector.url}/api/v1/windows", json={"kind": "ai"})
        assert r.status_code == 201, r.text
        window = r.json()["id"]
    plan = tmp_path / "plan.toml"
    plan.write_text(PLAN.format(window=window, python=json.dumps(sys.executable),
                                workload=json.dumps(str(WORKLOAD)), startup=STARTUP_S))
    done = dcmeter("calibrate", "run", str(plan), "--collector", collector.url, "--json",
                   str(tmp_path / "record.json"), token=eng, timeout=300)
    assert done.returncode == 0, done.stderr
    assert "Traceback" not in done.stderr
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["state"] == "closed"
    # With 2 repetitions the type A component has 1 degree of freedom: when it dominates,
    # the record says that k = 2 covers less than 95 % (GUM G.4.2); nothing else is amiss.
    assert all("effective degrees of freedom" in i for i in record["issues"]), record["issues"]
    assert record["instrument"]["kind"] == "run" and record["reference"]["kind"] == "workload"

    with collector.http("reader") as http:
        runs = http.get(f"{collector.url}/api/v1/windows/{window}/runs").json()
    by_run_rep = {run["repetition"]: run for run in runs}
    # 2 points × 2 repetitions = 4 runs; run repetition = point index × 2 + repetition.
    assert len(runs) == 4
    assert sorted(run["repetition"] for run in runs) == [1, 2, 3, 4]

    for index, (point, tokens, rate) in enumerate(
            zip(record["points"], (600, 1200), (200, 400), strict=True)):
        assert point["n"] == 2 and [r["valid"] for r in point["repetitions"]] == [True, True]
        for rep in point["repetitions"]:
            d = rep["detail"]
            # The record keeps no run id: the run is found by its repetition number.
            run = by_run_rep[index * 2 + rep["repetition"]]
            assert run["tokens"] == tokens and run["model"] == "tokens-demo"
            run_s = parse_rfc3339(run["end"]) - parse_rfc3339(run["start"])
            # The instrument: tokens over the run's interval; the reference: the workload's
            # own tokens over its loop's seconds (the report's elapsed_s).
            assert rep["indicated"] == pytest.approx(tokens / run_s, rel=1e-9)
            assert rep["reference"] == tokens / d["elapsed_s"]
            assert LOOP_S <= d["elapsed_s"] < 4.5  # the loop: ≥ N / rate, late on a busy box
            startup = run_s - d["elapsed_s"]
            assert STARTUP_S <= startup < 2.0, startup
        # The reference is the framework's rate, within a few % of the planted one.
        assert abs(point["reference_mean"] - rate) <= 0.05 * rate
        assert -0.40 <= point["relative_error"] <= -0.10, point["relative_error"]
        assert point["error"] == point["indicated_mean"] - point["reference_mean"]
        assert {row["name"] for row in point["budget"]} >= {"repeatability", "reference_mpe"}
        # ±1 % of the reading (seed 004): |E| ≈ 17 % of R̄ is far outside: fail.
        assert point["mpe"] == pytest.approx(0.01 * point["reference_mean"], rel=1e-12)
        assert point["statement"]["result"] == "fail", point["statement"]
    assert record["statement"]["result"] == "fail"
    row = next(line for line in done.stdout.splitlines() if line.startswith("200 tokens/s"))
    assert row.split()[-1] == "fail"
