"""The simulated power calibration bench (`[calibration]` of a simulate file, dcmeter/sim/bench.py):
loads set through a file, the planted DCMI errors read by ipmitool, the reference analyser read
by mbpoll and by the agent, and the bench's truth, all worked by hand.

The bench of these tests: server-0001 (idle 180 W, max 650 W) under calibration, DCMI gain
error g = 0.03 and offset o = 4 W, analyser gain error a = 0.001, analyser profile
eastron_sdm630 (active power: input registers 0x0034-0x0035, float32 W, high word first).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import ROOT
from structlog.testing import capture_logs

from dcmeter.sim.bench import FileLoad, SimCalibration, bench_truth
from dcmeter.sim.serve import SimulateFile

BENCH = dict(
    servers=["server-0001"], load_file="LOAD", dcmi_gain_error=0.03, dcmi_offset_w=4.0,
    analyser_gain_error=0.001,
)
# By hand, P = 180 + 470·u; DCMI = round(P·1.03 + 4); analyser = P·1.001:
#   u = 0:   P = 180 W, DCMI = round(185.4 + 4 = 189.4) = 189, analyser = 180.18 W
#   u = 0.5: P = 415 W, DCMI = round(427.45 + 4 = 431.45) = 431, analyser = 415.415 W
#   u = 1:   P = 650 W, DCMI = round(669.5 + 4 = 673.5) = 674 (half to even: 674), 650.65 W
EXPECTED = {0.0: (180.0, 189, 180.18), 0.5: (415.0, 431, 415.415), 1.0: (650.0, 674, 650.65)}


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _sim_toml(load_file: Path) -> str:
    return f"""
[simulate]
host = "127.0.0.1"

[site]
servers = 2
switches = 0
storage = 0

[calibration]
servers = ["server-0001"]
load_file = "{load_file}"
dcmi_gain_error = 0.03
dcmi_offset_w = 4.0
analyser_profile = "eastron_sdm630"
analyser_gain_error = 0.001
"""


def test_bench_truth_is_the_planted_error_worked_by_hand() -> None:
    cal = SimCalibration.model_validate(BENCH)
    for u, (p, dcmi, analyser) in EXPECTED.items():
        t = bench_truth(cal, 180.0, 650.0, u)
        assert t.power_w == pytest.approx(p, abs=1e-9)
        assert t.dcmi_w == dcmi
        assert t.analyser_w == pytest.approx(analyser, abs=1e-9)
        # E = DCMI - analyser: 189 - 180.18 = 8.82; 431 - 415.415 = 15.585; 674 - 650.65 = 23.35
        assert t.error_w == pytest.approx(dcmi - analyser, abs=1e-9)
        # Before rounding, E = P(g - a) + o = P·0.029 + 4: 9.22, 16.035, 22.85 W
        assert t.planted_error_w == pytest.approx(p * 0.029 + 4, abs=1e-9)
    assert bench_truth(cal, 180.0, 650.0, 0.5).relative_error == pytest.approx(15.585 / 415.415)


def test_file_load_is_piecewise_constant_with_an_exact_integral(tmp_path: Path) -> None:
    now = [1000.0]
    path = tmp_path / "load"
    with capture_logs() as logs:
        load = FileLoad(path, t0=1000.0, initial=0.0, clock=lambda: now[0])
        now[0] = 1010.0
        assert load.at(1010.0) == 0.0  # absent file: the last load stays, logged once
    assert [e["event"] for e in logs] == ["sim_bench_load_file_unusable"]
    path.write_text("0.5\n")
    now[0] = 1012.0
    # Seen at 1012: in effect from the previous look, 1010, so this reading shows it.
    assert load.at(1012.0) == 0.5
    now[0] = 1030.0
    assert load.at(1030.0) == 0.5  # a look at 1030, the file unchanged
    path.write_text("1\n")
    now[0] = 1031.0
    assert load.integral(1031.0) == 0.5 * 20 + 1.0  # the step to 1 starts at 1030
    now[0] = 1035.0
    with capture_logs() as logs:
        path.write_text("half")
        assert load.at(1035.0) == 1.0
        path.write_text("1.5")
        assert load.at(1035.0) == 1.0
    assert [e["reason"] for e in logs] == ["'half' is not a number", "1.5 is outside 0..1"]
    # 0 over 1000..1010, 0.5 over 1010..1030, 1 over 1030..1040: 0 + 10 + 10 = 20 s
    assert load.integral(1040.0) == 20.0
    assert load.at(1005.0) == 0.0 and load.at(1020.0) == 0.5  # the past stays as it was


def test_a_bench_server_the_site_lacks_is_one_clear_error(tmp_path: Path) -> None:
    cfg = tmp_path / "sim.toml"
    cfg.write_text(_sim_toml(tmp_path / "load").replace('"server-0001"', '"server-0009"'))
    r = subprocess.run([sys.executable, "-m", "dcmeter", "simulate", "-c", str(cfg)],
                       capture_output=True, text=True, env=_env(), timeout=60)
    assert r.returncode == 2, r.stderr
    assert "server-0009 is not a simulated server (valid: server-0001 .. server-0002)" in r.stderr
    assert "Traceback" not in r.stderr
    with pytest.raises(ValueError, match="analyser_profile 'acrel_adl3000' is not a profile"):
        SimulateFile.model_validate({"calibration": {**BENCH, "analyser_profile": "acrel_adl3000"}})


def _dcmi_w(port: int) -> int:
    r = subprocess.run(
        ["ipmitool", "-I", "lanplus", "-C", "3", "-H", "127.0.0.1", "-p", str(port),
         "-U", "admin", "-P", "secret", "dcmi", "power", "reading"],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 0, r.stderr
    m = re.search(r"Instantaneous power reading:\s+(\d+) Watts", r.stdout)
    assert m, r.stdout
    return int(m.group(1))


def _analyser_w(port: int) -> float:
    # SDM630 total power: input registers 0x0034-0x0035 (PDU addressing), float32, high word
    # first (-B).
    r = subprocess.run(
        ["mbpoll", "-m", "tcp", "-p", str(port), "-a", "1", "-t", "3:float", "-B", "-0",
         "-r", str(0x34), "-c", "1", "-1", "127.0.0.1"],
        capture_output=True, text=True, timeout=30,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(rf"\[{0x34}\]:\s+(\S+)", r.stdout)
    assert m, r.stdout
    return float(m.group(1))


def _identity(port: int) -> dict[int, bytes]:
    from pymodbus.client import AsyncModbusTcpClient

    async def read() -> dict[int, bytes]:
        client = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=10)
        await client.connect()
        try:
            # read code 3: the basic, regular and extended objects
            response = await client.read_device_information(read_code=3, object_id=0)
            return dict(response.information)
        finally:
            client.close()

    return asyncio.run(read())


def test_bench_loads_show_the_planted_errors_to_ipmitool_mbpoll_and_the_agent(
    tmp_path: Path,
) -> None:
    load = tmp_path / "load"
    cfg, ports_file, agent_cfg = tmp_path / "sim.toml", tmp_path / "ports.json", tmp_path / "a.toml"
    site_file = tmp_path / "site.toml"
    cfg.write_text(_sim_toml(load))
    proc = subprocess.Popen(
        [sys.executable, "-m", "dcmeter", "simulate", "-c", str(cfg), "--ports-file",
         str(ports_file), "--agent-config", str(agent_cfg), "--site-file", str(site_file)],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=_env(),
    )
    try:
        deadline = time.monotonic() + 60
        while not (ports_file.exists() and agent_cfg.exists() and site_file.exists()):
            assert proc.poll() is None, proc.communicate()[0]
            assert time.monotonic() < deadline, "simulate did not come up"
            time.sleep(0.1)
        time.sleep(0.3)  # the files are written one after the other
        ports = {e["name"]: e for e in json.loads(ports_file.read_text())}
        # DEVICE_ORDER: the meters, the BMCs, then the analyser last.
        assert list(ports) == ["meter-total", "meter-it", "server-0001", "server-0002",
                               "analyser-001"]
        assert ports["analyser-001"]["role"] == "reference"
        bmc, analyser = ports["server-0001"]["port"], ports["analyser-001"]["port"]
        for u, (_, dcmi, reference) in EXPECTED.items():
            load.write_text(f"{u}\n")
            assert _dcmi_w(bmc) == dcmi
            # float32 keeps 24 bits: 415.415 is held as 415.41500854..., within 1e-4 W
            assert _analyser_w(analyser) == pytest.approx(reference, abs=1e-4)
        # Its identity (Read Device Identification, extended: object 0x80 is the serial).
        assert _identity(analyser) == {
            0x00: b"dcmeter simulator", 0x01: b"eastron_sdm630", 0x02: b"1.0",
            0x05: b"simulated reference power analyser (eastron_sdm630)", 0x80: b"SIM-AN-0001"}
        # A server not under calibration keeps its swing and reports its truth: 180..650 W.
        assert 180 <= _dcmi_w(ports["server-0002"]["port"]) <= 650

        # The written agent config reads the analyser as a reference at point 8 (it_input).
        r = subprocess.run(
            [sys.executable, "-m", "dcmeter", "agent", "once", "--json", "-c", str(agent_cfg)],
            capture_output=True, text=True, env=_env(), timeout=120,
        )
        assert r.returncode == 0, r.stdout + r.stderr
        samples = [json.loads(line) for line in r.stdout.splitlines()]
        power = next(s for s in samples
                     if s["source"] == "analyser-001" and s["metric"] == "power_w")
        assert power["labels"]["role"] == "reference" and power["labels"]["point"] == "it_input"
        assert power["value"] == pytest.approx(650.65, abs=1e-4)  # the load file still says 1
        bmc_w = next(s["value"] for s in samples
                     if s["source"] == "server-0001" and s["metric"] == "power_w")
        assert bmc_w == 674
        # The site file stays valid and leaves the analyser out of every sum.
        check = subprocess.run(
            [sys.executable, "-c", "import sys; from dcmeter.collectors.evaluation.site import"
             " load_site; s = load_site(sys.argv[1]); print(s.energy.total, s.energy.it)",
             str(site_file)], capture_output=True, text=True, env=_env(), timeout=60)
        assert check.returncode == 0, check.stderr
        assert check.stdout.split("\n")[0] == "['meter-total'] ['meter-it']"
        assert "analyser-001 (role reference)" in site_file.read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    assert proc.returncode == 0, out
    assert "5 devices" in out


def test_analyser_energy_is_the_exact_integral_times_its_gain(tmp_path: Path) -> None:
    from dcmeter.sim.bench import bench_site
    from dcmeter.sim.serve import SimEndpoints, Simulation
    from dcmeter.sim.site import SimSite, SimSiteConfig

    load = tmp_path / "load"
    load.write_text("1\n")  # read when the bench is built: u = 1 from t0 on
    cal = SimCalibration.model_validate({**BENCH, "load_file": str(load)})
    t0 = time.time() - 3600  # an hour of u = 1: a missing gain would be 3.6 s short below
    site = bench_site(SimSite.build(SimSiteConfig(servers=2, switches=0, storage=0), t0), cal)
    values = Simulation(site, SimEndpoints(), cal)._analyser(cal).devices[0].values
    before = time.time()
    v = values()
    after = time.time()
    # Power 650 · 1.001 = 650.65 W; energy 650.65 W · (t − t0) s / 3.6e6 J/kWh, so the energy
    # over the power, in s, is the time since t0 at the moment of reading (about 3600 s;
    # without the gain 1.001 it would be 3600/1.001 = 3596.4 s).
    assert v["power_w"] == pytest.approx(650.65, abs=1e-9)
    assert before - t0 - 1e-6 <= v["energy_import_kwh"] * 3.6e6 / v["power_w"] <= after - t0 + 1e-6
    # The other server keeps its swing and stays out of the analyser's sum.
    assert site.servers[1].load is not site.servers[0].load
