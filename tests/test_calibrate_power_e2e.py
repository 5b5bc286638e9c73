"""A power calibration end to end on the simulated bench (dcmeter/sim/bench.py): `dcmeter
simulate` with a `[calibration]` table, a real agent reading server-0001's BMC (the instrument,
over IPMI/DCMI) and analyser-001 (the reference, over Modbus) into a real collector, and
`dcmeter calibrate run` whose command driver sets each load point by writing the bench's load
file. The record's errors are the planted ones, its statements those worked by hand below, and
its certificate (zh and en HTML through the API, en PDF through the CLI) prints them.

The bench: server-0001 idle P0 = 180 W, full P1 = 650 W ([site] defaults), so P = 180 + 470·u;
planted DCMI gain error g = 0.02 and offset o = 11 W; analyser gain error a = 0.002. So
  DCMI reading X = round(P·1.02 + 11)   (whole watts, half to even: the simulated BMC)
  analyser    R = P·1.002              (float32 in its registers: ~1e-5 W off at these levels)
  E = X − R;  before DCMI's rounding E_planted = P(g − a) + o = 0.018·P + 11.

Worked by hand, point by point (u = 0, 0.5, 1):
  u = 0:   P = 180 W; X = round(183.6 + 11 = 194.6) = 195 W; R = 180.36 W; E = 14.64 W
           E_planted = 3.24 + 11 = 14.24 W
  u = 0.5: P = 415 W; X = round(423.3 + 11 = 434.3) = 434 W; R = 415.83 W; E = 18.17 W
           E_planted = 7.47 + 11 = 18.47 W
  u = 1:   P = 650 W; X = round(663 + 11 = 674) = 674 W;     R = 651.3 W;  E = 22.7 W
           E_planted = 11.7 + 11 = 22.7 W

The budget (docs/calibration.md): the levels are steady, so repeatability s = 0 (up to float32)
and the spread, hence the synchronisation row, is 0; the plan gives δx = 1 W (DCMI's whole
watts) and δr = 0. With the analyser's MPE 1 % of R̄ (the power quantity's reference MPE):
  u_c² = (0.01·R̄)²/3 + 1/12,  U = 2·u_c,  MPE = 0.05·R̄  (seed 004: ±5 % for power)
  u = 0:   (1.8036)²/3 = 1.084317; + 0.083333 = 1.167650; u_c = 1.080579; U = 2.161158 W
           MPE = 9.018 W; MPE + U = 11.179 W < |E| = 14.64 W              -> fail
  u = 0.5: (4.1583)²/3 = 5.763848; + 0.083333 = 5.847181; u_c = 2.418095; U = 4.836190 W
           MPE = 20.7915 W; MPE − U = 15.955 W < |E| = 18.17 W ≤ MPE   -> conditional_pass
  u = 1:   (6.513)²/3 = 14.139723; + 0.083333 = 14.223056; u_c = 3.771347; U = 7.542694 W
           MPE = 32.565 W; |E| = 22.7 W ≤ MPE − U = 25.022 W             -> pass
A point's command waits 3 s before it changes the load (10 agent intervals: room for a slow
tick on a busy machine; a repetition at the same load writes nothing): the collector's gauge
mean is linear between samples, so a load written just after a dwell ends would bend the
segment from the dwell's last sample to the first one after it (the bench back-dates a
written load to its previous look at the file) and pull that repetition towards the next
point's level: without the wait, repetition 2 at idle read R = 181.38 W, not 180.36 W
(measured, E = 14.675 W).
Guarded rule (ILAC-G8:09/2019 §4.2.3): the calibration's statement is the worst point's, fail.
Each point's |E − E_planted| (0.40, 0.30, 0 W: DCMI's rounding) is within its U.
"""

from __future__ import annotations

import html
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest
from conftest import ROOT, Collector

from dcmeter.sim.bench import SimCalibration, bench_truth
from tests.peers.agent import agent_of, polling

SIM = """
[simulate]
host = "127.0.0.1"

[site]
servers = 2
switches = 0
storage = 0

[calibration]
servers = ["server-0001"]
load_file = "{load}"
initial_load = 0.0
dcmi_gain_error = 0.02
dcmi_offset_w = 11.0
analyser_profile = "eastron_sdm630"
analyser_gain_error = 0.002
analyser_serial = "SIM-AN-0001"
"""

PLAN = """
[calibration]
quantity = "power"
decision_rule = "guarded"
repetitions = 2
dwell_s = 2.0
settle_s = 2.0
sync_s = 0.2
environment = "23.1 °C, 41 % RH"
laboratory = "dcmeter test bench"
customer = "dcmeter"

[instrument]
kind = "series"
source = "server-0001"
metric = "power_w"
resolution = 1.0

[reference]
kind = "series"
source = "analyser-001"
metric = "power_w"
name = "reference power analyser"
make = "dcmeter simulator"
model = "eastron_sdm630"
serial = "SIM-AN-0001"
certificate = "CAL-REF-2026-0042"
calibrated = "2026-01-05"
due = "2027-01-05"
resolution = 0.0

[driver]
kind = "command"

[[points]]
label = "idle 180 W"
command = ['sh', '-c', '[ "$(cat {load} 2>/dev/null)" = 0 ] || { sleep 3; echo 0 > {load}; }']

[[points]]
label = "half 415 W"
command = ['sh', '-c', '[ "$(cat {load} 2>/dev/null)" = 0.5 ] || { sleep 3; echo 0.5 > {load}; }']

[[points]]
label = "full 650 W"
command = ['sh', '-c', '[ "$(cat {load} 2>/dev/null)" = 1 ] || { sleep 3; echo 1 > {load}; }']
"""

# label: (u, E by hand (W), E_planted by hand (W), U by hand (W), MPE (W), statement)
EXPECTED = {
    "idle 180 W": (0.0, 14.64, 14.24, 2.161158, 9.018, "fail"),
    "half 415 W": (0.5, 18.17, 18.47, 4.836190, 20.7915, "conditional_pass"),
    "full 650 W": (1.0, 22.7, 22.7, 7.542694, 32.565, "pass"),
}


# The results row of the certificate per point, rounded by hand as certificate_format.py
# does (GUM 7.2.6): U to two significant digits, R̄, X̄, E and the MPE to U's decimal place,
# E/R̄ to the place of the relative U; s = 0 (the levels are steady).
#   idle: U 2.161 -> 2.2; R̄ 180.36 -> 180.4; E 14.64 -> 14.6; U/R̄ = 1.198 % -> 1.2 %;
#         E/R̄ = 14.64/180.36 = 8.117 % -> 8.1 %; MPE 9.018 -> 9.0
#   half: U 4.836 -> 4.8; R̄ 415.83 -> 415.8; E 18.17 -> 18.2; U/R̄ = 1.163 % -> 1.2 %;
#         E/R̄ = 18.17/415.83 = 4.370 % -> 4.4 %; MPE 20.7915 -> 20.8
#   full: U 7.543 -> 7.5; R̄ 651.3; E 22.7; U/R̄ = 1.158 % -> 1.2 %;
#         E/R̄ = 22.7/651.3 = 3.485 % -> 3.5 %; MPE 32.565 (32.56499939 from float32) -> 32.6
ROWS = {
    "idle 180 W": ["idle 180 W", "180.4", "195.0", "14.6", "8.1 %", "0", "2.2", "1.2 %", "9.0"],
    "half 415 W": ["half 415 W", "415.8", "434.0", "18.2", "4.4 %", "0", "4.8", "1.2 %", "20.8"],
    "full 650 W": ["full 650 W", "651.3", "674.0", "22.7", "3.5 %", "0", "7.5", "1.2 %", "32.6"],
}


def cells(page: str) -> list[list[str]]:
    """Each table row of an HTML page as the text of its cells."""
    rows = []
    for row in re.findall(r"<tr[^>]*>(.*?)</tr>", page, re.S):
        texts = [html.unescape(re.sub(r"<[^>]+>", "", c)).strip()
                 for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", row, re.S)]
        rows.append(texts)
    return rows


def _env(**extra: str) -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT), **extra}


def dcmeter(*args: str, token: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "dcmeter", *args], capture_output=True,
                          text=True, env=_env(DCMETER_TOKEN=token), cwd=ROOT, timeout=timeout)


def test_bench_truth_agrees_with_the_hand_working() -> None:
    """The cross-check: the bench's own model gives the figures worked by hand above."""
    cal = SimCalibration.model_validate(dict(
        servers=["server-0001"], load_file="LOAD", dcmi_gain_error=0.02, dcmi_offset_w=11.0,
        analyser_gain_error=0.002))
    for u, error, planted, *_ in EXPECTED.values():
        t = bench_truth(cal, 180.0, 650.0, u)
        assert t.error_w == pytest.approx(error, abs=1e-9)
        assert t.planted_error_w == pytest.approx(planted, abs=1e-9)


def test_power_calibration_on_the_simulated_bench(collector: Collector, tmp_path: Path) -> None:
    load = tmp_path / "load"
    sim_cfg, agent_cfg = tmp_path / "sim.toml", tmp_path / "sim-agent.toml"
    sim_cfg.write_text(SIM.format(load=load))
    sim = subprocess.Popen(
        [sys.executable, "-m", "dcmeter", "simulate", "-c", str(sim_cfg), "--agent-config",
         str(agent_cfg)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env())
    try:
        deadline = time.monotonic() + 60
        while True:  # written once every device listens; wait until it parses whole
            assert sim.poll() is None, sim.communicate()[0]
            assert time.monotonic() < deadline, "simulate wrote no agent config"
            try:
                sources = tomllib.loads(agent_cfg.read_text())["sources"]
                if {"server-0001", "analyser-001"} <= {s["id"] for s in sources}:
                    break
            except (OSError, tomllib.TOMLDecodeError, KeyError):
                pass
            time.sleep(0.1)
        # The simulator's own source tables for the two devices of the bench.
        picked = [s for s in sources if s["id"] in ("server-0001", "analyser-001")]
        agent = agent_of(tmp_path, collector.url, collector.keys["agent-1"], picked)
        plan = tmp_path / "plan.toml"
        plan.write_text(PLAN.replace("{load}", str(load)))
        eng = collector.tokens["engineer"]
        with polling(agent, gap_s=0.3):
            done = dcmeter("calibrate", "run", str(plan), "--collector", collector.url,
                           "--wait-data", "60", "--json", str(tmp_path / "record.json"),
                           token=eng)
    finally:
        sim.send_signal(signal.SIGTERM)
        sim_out, _ = sim.communicate(timeout=30)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Traceback" not in done.stderr
    record = json.loads((tmp_path / "record.json").read_text())
    assert record["state"] == "closed", record
    assert [p["label"] for p in record["points"]] == list(EXPECTED)

    for point in record["points"]:
        _, error, planted, expanded, mpe, result = EXPECTED[point["label"]]
        assert point["n"] == 2 and all(r["valid"] for r in point["repetitions"]), point
        for rep in point["repetitions"]:  # each repetition alone, as worked by hand
            assert rep["error"] == pytest.approx(error, abs=1e-3), (point["label"], rep)
        # float32 in the analyser's registers: R̄ within 1e-4 W of the hand figure
        assert point["error"] == pytest.approx(error, abs=1e-3), point["label"]
        assert point["expanded_u"] == pytest.approx(expanded, abs=1e-3), point["label"]
        assert point["mpe"] == pytest.approx(mpe, abs=1e-3), point["label"]
        assert abs(point["error"] - planted) <= point["expanded_u"], point["label"]
        assert point["statement"]["rule"] == "guarded"
        assert point["statement"]["result"] == result, (point["label"], point["statement"])
        rows = {r["name"]: r for r in point["budget"]}
        assert rows["synchronisation"]["u"] == pytest.approx(0.0, abs=1e-3)  # steady levels
    assert record["statement"]["result"] == "fail"
    assert record["procedure"]["driver"] == "command"
    assert record["procedure"]["decision_rule"] == "guarded"

    # The instrument as the agent reports it: server-0001's BMC, its Get Device ID (the
    # simulated BMC answers firmware 1.00, manufacturer 0, product 1: dcmeter/sim/bmc.py).
    inst = record["instrument"]
    assert (inst["source"], inst["metric"], inst["agent"], inst["point"]) == (
        "server-0001", "power_w", "agent-1", "it_input")
    assert inst["device"] is not None and inst["device"]["firmware"] == "1.00", inst
    ref = record["reference"]
    assert {k: ref[k] for k in ("kind", "name", "make", "model", "serial", "certificate",
                                "calibrated", "due")} == {
        "kind": "series", "name": "reference power analyser", "make": "dcmeter simulator",
        "model": "eastron_sdm630", "serial": "SIM-AN-0001", "certificate": "CAL-REF-2026-0042",
        "calibrated": "2026-01-05", "due": "2027-01-05"}
    assert ref["mpe"]["relative"] == 0.01

    # The certificate through the API, both languages: each point's label, the statement
    # words (certificate_i18n.py), the reference's certificate number.
    words = {"en": ("Fail", "Conditional pass", "Pass"), "zh": ("不合格", "有条件合格", "合格")}
    with collector.http("reader") as http:
        for lang, said in words.items():
            r = http.get(f"{collector.url}/api/v1/calibrations/{record['id']}/certificate",
                         params={"lang": lang, "format": "html"}, timeout=60)
            assert r.status_code == 200, r.text
            page = r.text
            for (label, row), word in zip(ROWS.items(), said, strict=True):
                assert [*row, word] in cells(page), (lang, label)
            assert "CAL-REF-2026-0042" in page and f"DCM-CAL-{record['id']}" in page

    # One PDF, printed by the CLI through the collector, read back.
    pdftotext = shutil.which("pdftotext")
    assert pdftotext, "pdftotext missing: apt-get install poppler-utils (.ci/run does)"
    pdf = tmp_path / "cert-en.pdf"
    printed = dcmeter("calibrate", "certificate", str(record["id"]), "--lang", "en",
                      "--format", "pdf", "-o", str(pdf), "--collector", collector.url,
                      token=collector.tokens["reader"])
    assert printed.returncode == 0, printed.stderr
    text = subprocess.run([pdftotext, str(pdf), "-"], capture_output=True, text=True,
                          timeout=60, check=True).stdout
    assert f"DCM-CAL-{record['id']}" in text
    assert "Conditional pass" in text
    assert sim.returncode == 0, sim_out
