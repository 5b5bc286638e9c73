"""The instrument list end to end (issue 16, item 1): device identities from the wire to the
report.

`dcmeter simulate` serves a small site (two Modbus TCP meters answering Read Device
Identification, two BMCs answering IPMI Get Device ID, an SNMP switch and storage system
answering sysDescr and sysObjectID) and writes the agent config and site file; a real agent
(`dcmeter agent run -c` on that config) reads it and ships to a real collector (`dcmeter
collector serve`). An AI window is opened and closed with the real CLI; its result's
`instruments` must list each source once, with the identity its simulator was configured with
(worked out below from dcmeter/sim's settings, not copied from any output), and the English
HTML report must list them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import httpx
from conftest import Collector

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from tests.peers.stack import sim_stack

AGENT_ID = "inst-agent"
TOTAL_PROFILE, IT_PROFILE = "eastron_sdm630", "schneider_pm5100"  # SimEndpoints' defaults
SERVERS = ("server-0001", "server-0002")


def _meter(profile: str, role: str) -> dict[str, str]:
    """What a simulated meter reports (dcmeter/sim/serve.py gives each meter VendorName
    "dcmeter simulator", ProductCode = its profile, MajorMinorRevision "1.0", ModelName
    "simulated <profile> meter (<role>)"), mapped as modbus_identity.py maps the objects."""
    return {"profile": profile, "make": "dcmeter simulator", "product_id": profile,
            "firmware": "1.0", "model": f"simulated {profile} meter ({role})"}


# The simulated BMC's Get Device ID (dcmeter/sim/bmc.py): device id 0x20, device revision 1,
# firmware 1.00 (major 1, BCD minor 00, as ipmitool prints it), manufacturer 0, product 1.
BMC = {"device_id": str(0x20), "revision": "1", "firmware": "1.00", "manufacturer_id": "0",
       "product_id": "1"}
# net-snmp's "Linux" sysObjectID, which the simulated agent reports (dcmeter/sim/snmp.py).
NET_SNMP_LINUX = "1.3.6.1.4.1.8072.3.2.10"


def _snmp(name: str) -> dict[str, str]:
    return {"sys_descr": f"dcmeter simulated agent {name}", "sys_object_id": NET_SNMP_LINUX}


EXPECTED: dict[str, dict[str, Any]] = {
    "meter-total": {"protocol": "modbus", "point": "total", "roles": ["energy.total"],
                    "device": _meter(TOTAL_PROFILE, "total")},
    "meter-it": {"protocol": "modbus", "point": "it_pdu", "roles": ["energy.it"],
                 "device": _meter(IT_PROFILE, "it")},
    **{s: {"protocol": "ipmi", "point": "it_input", "roles": ["ai.servers"],
           "kind": "compute", "device": BMC} for s in SERVERS},
    "switch-001": {"protocol": "snmp", "point": None, "roles": ["ai.network"],
                   "kind": "network", "device": _snmp("switch-001")},
    "storage-001": {"protocol": "snmp", "point": None, "roles": ["ai.storage"],
                    "kind": "storage", "device": _snmp("storage-001")},
}


def test_window_lists_every_simulated_instrument_with_its_identity(tmp_path: Path) -> None:
    simulate = (f'total_profile = "{TOTAL_PROFILE}"\nit_profile = "{IT_PROFILE}"\n\n'
                f"[site]\nservers = {len(SERVERS)}\nswitches = 1\nports_per_switch = 3\n"
                "storage = 1\n")
    # The AI window reads the servers, the network and the storage too (point 8).
    ai = ("\n[ai]\n" f"servers = {json.dumps(list(SERVERS))}\n"
          'network = ["switch-001"]\nstorage = ["storage-001"]\n')
    with sim_stack(tmp_path, AGENT_ID, simulate, ai) as stack:
        r = stack.window("start", "--kind", "ai", "--json")
        assert r.returncode == 0, r.stderr
        wid = str(json.loads(r.stdout)["id"])
        time.sleep(4.0)  # four polls of every device inside the window
        r = stack.window("stop", wid)
        assert r.returncode == 0, r.stderr
        time.sleep(1.5)  # a poll after the end
        r = stack.window("status", wid, "--json")
        assert r.returncode == 0, r.stderr
        result = json.loads(r.stdout)
        html = tmp_path / "report.html"
        r = stack.window("report", wid, "--format", "html", "--lang", "en", "-o", str(html))
        assert r.returncode == 0, r.stderr
    agent_cfg = stack.agent_cfg

    rows = result["instruments"]
    assert sorted(r["source"] for r in rows) == sorted(EXPECTED), rows  # one row per source
    cfg_text = agent_cfg.read_text()
    for row in rows:
        want = EXPECTED[row["source"]]
        assert row["device"] == want["device"], row
        assert row["protocol"] == want["protocol"], row
        assert row["agent"] == AGENT_ID, row
        assert row["point"] == want["point"], row
        assert row["roles"] == want["roles"], row
        if "kind" in want:
            assert row["kind"] == want["kind"], row
        assert row["samples"] > 0, row
        # The address names the simulated device's port, as the written agent config does.
        block = cfg_text.split(f'id = "{row["source"]}"', 1)[1].split("[[sources]]", 1)[0]
        sim_port = next(ln.split("=", 1)[1].strip() for ln in block.splitlines()
                        if ln.startswith("port ="))
        assert "127.0.0.1" in row["address"] and sim_port in row["address"], row

    page = html.read_text(encoding="utf-8")
    section = page.split('<h2 id="instruments">', 1)[1].split("<h2", 1)[0]
    for source in EXPECTED:
        assert f"<b>{source}</b>" in section, source
    assert section.count("dcmeter simulator simulated") == 2  # make and model of each meter
    assert section.count(">32<br>1.00<") == len(SERVERS), section  # the BMCs' device id


def test_a_device_replaced_mid_window_is_a_source_change_and_listed_as_the_newest(
    collector: Collector,
) -> None:
    """The IT meter's identity changes between two batches (a meter swapped, or its firmware
    updated, mid-window): the result's `quality.source_changes` says when and from what to
    what, and its instrument list shows the identity the newest batch brought (one row)."""
    t0 = 1_790_000_000  # 2026-09-21T14:13:20Z
    energy, power = MetricSpec("energy_import_kwh", "kWh", "counter"), MetricSpec("power_w", "W")
    total = SourceInfo("meter-total", "modbus", "127.0.0.1:1/1", {"point": "total"}, 0.005)
    old_dev = {"profile": "schneider_pm5100", "serial": "PM-0001", "firmware": "1.2"}
    new_dev = {"profile": "schneider_pm5100", "serial": "PM-0002", "firmware": "2.0"}

    def it(device: dict[str, str]) -> SourceInfo:
        return SourceInfo("meter-it", "modbus", "127.0.0.1:2/1", {"point": "it_pdu"}, 0.005,
                          device)

    def body(seq: int, prev: bytes, minutes: range, device: dict[str, str]) -> bytes:
        """One sample a minute of each meter: total 150 kW, IT 100 kW."""
        ts, src, met, val = [], [], [], []
        for i in minutes:
            t = (t0 + 60 * i) * 10**9
            for s, kw in ((0, 150.0), (1, 100.0)):
                ts += [t, t]
                src += [s, s]
                met += [0, 1]
                val += [1000 + kw * i / 60, kw * 1000]
        return wire.encode_body(Batch(
            "agent-1", seq, prev, (t0 + 60 * minutes[-1]) * 10**9, ClockStatus(),
            [total, it(device)], [MetricEntry(energy), MetricEntry(power)],
            *wire.pack_arrays(ts, src, met, val)))

    key = collector.keys["agent-1"]
    first = body(1, GENESIS, range(0, 61), old_dev)  # 14:13:20 .. 15:13:20
    second = body(2, wire.batch_hash(first), range(61, 121), new_dev)  # 15:14:20 .. 16:13:20
    for b in (first, second):
        r = httpx.post(f"{collector.url}/api/v1/batches", content=wire.envelope(b, key),
                       headers={"content-type": "application/x-msgpack"})
        assert r.status_code == 200, r.text
    base = f"{collector.url}/api/v1/windows"
    with collector.http() as http:
        w = http.post(base, json={"kind": "infrastructure",
                                  "start": "2026-09-21T14:30:00Z"}).json()
        http.post(f"{base}/{w['id']}/stop",
                  json={"end": "2026-09-21T15:30:00Z"}).raise_for_status()
        result = http.get(f"{base}/{w['id']}").json()
    (change,) = result["quality"]["source_changes"]
    # From the first sample of the second batch (minute 61), the identities as sorted JSON.
    assert change == {"agent": "agent-1", "source": "meter-it", "at": "2026-09-21T15:14:20Z",
                      "changed": {"device": [json.dumps(old_dev, sort_keys=True),
                                             json.dumps(new_dev, sort_keys=True)]}}
    rows = {r["source"]: r for r in result["instruments"]}
    assert sorted(rows) == ["meter-it", "meter-total"]
    assert rows["meter-it"]["device"] == new_dev
    assert rows["meter-total"]["device"] == {}
    # 14:30:20 .. 15:29:20: 60 minutes, energy and power each, across both identities.
    assert rows["meter-it"]["samples"] == 120
