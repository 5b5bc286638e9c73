"""The meter cross-check end to end (issue 19, item 4): simulator, agent, collector, CLI, report.

`dcmeter simulate` serves a site of three servers (IPMI BMCs) and no switch or storage system,
so its IT meter (meter-it, Modbus) measures exactly the servers' sum (dcmeter/sim/site.py:
it_w = Σ device power; no other IT load by default). The servers are sized as rack-scale
systems (20-60 kW each) so that the IT meter's 1 Wh register step is far below the window's
energy (3 × ≥ 20 kW × ≥ 4 s ≥ 66 Wh). The site file declares meter-it over the three
servers with no loss and no allowance: the window's reconciliation must agree within U, and
the difference itself must be far inside U (U ≥ 0.05·S/√3 ≈ 2.9 % of S by the BMC default of
±5 % per server, uncertainty.py; the sampling of a 600 s swing every 1 s and the meter's
1 Wh step stay well under 1 %).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import httpx

from tests.peers.stack import sim_stack

AGENT_ID = "recon-agent"
SERVERS = ("server-0001", "server-0002", "server-0003")


def test_the_it_meter_reconciles_with_the_servers_behind_it(tmp_path: Path) -> None:
    extra = ('\n[[reconcile]]\nname = "IT feed"\n'
             f'meter = "meter-it"\nbelow = {json.dumps(list(SERVERS))}\n'
             # one server left out: a third of the load unaccounted for
             '\n[[reconcile]]\nname = "short"\nmeter = "meter-it"\n'
             f'below = {json.dumps(list(SERVERS[:2]))}\n')
    simulate = (f"\n[site]\nservers = {len(SERVERS)}\nswitches = 0\nstorage = 0\n"
                "server_idle_w = 20000\nserver_max_w = 60000\n")
    with sim_stack(tmp_path, AGENT_ID, simulate, extra) as stack:
        r = stack.window("start", "--kind", "infrastructure", "--json")
        assert r.returncode == 0, r.stderr
        wid = str(json.loads(r.stdout)["id"])
        time.sleep(6.0)  # several polls of every device inside the window
        r = stack.window("stop", wid)
        assert r.returncode == 0, r.stderr
        time.sleep(2.0)  # a poll after the end
        r = stack.window("status", wid, "--json")
        assert r.returncode == 0, r.stderr
        result = json.loads(r.stdout)
        schemas = httpx.get(f"{stack.url}/openapi.json").json()["components"]["schemas"]
        html = {}
        for lang in ("en", "zh"):
            out = tmp_path / f"report-{lang}.html"
            r = stack.window("report", wid, "--format", "html", "--lang", lang, "-o", str(out))
            assert r.returncode == 0, r.stderr
            html[lang] = out.read_text(encoding="utf-8")

    assert "reconciliation" in schemas["WindowResult"]["properties"]
    assert {"meter_kwh", "below_kwh", "difference_kwh", "ratio", "uncertainty_kwh",
            "allowance_kwh", "verdict"} <= set(schemas["ReconciliationSet"]["properties"])
    rec, short = result["reconciliation"]
    # Without server-0003 (>= 20 kW of >= 60 kW) the difference is far beyond U: flagged.
    assert short["verdict"] == "disagrees", short
    assert short["difference_kwh"] > short["uncertainty_kwh"], short
    assert "reconcile_disagrees" in [d["code"] for d in result["quality"]["issue_details"]]
    assert rec["name"] == "IT feed" and rec["meter"] == "meter-it", rec
    assert rec["verdict"] == "agrees", rec
    s, m, u = rec["below_kwh"], rec["meter_kwh"], rec["uncertainty_kwh"]
    assert s > 3 * 20 * 4 / 3600, rec  # 3 servers at >= 20 kW for >= 4 s
    assert rec["allowance_kwh"] == 0 and rec["expected_loss_kwh"] == 0, rec
    assert u >= 0.05 * s / 3**0.5, rec  # at least the servers' own share
    assert abs(m - s) <= 0.01 * s, rec  # the meter measures their sum: far inside U
    methods = {p["source"]: p["role"] for p in rec["per_source"]}
    assert methods == {"meter-it": "meter", **{x: "below" for x in SERVERS}}, rec
    roles = {row["source"]: row["roles"] for row in result["instruments"]}
    assert roles["meter-it"] == ["energy.it", "reconcile.meter"], roles
    assert all(roles[x] == ["reconcile.below"] for x in SERVERS), roles
    en = html["en"].split('<h2 id="reconciliation">', 1)[1].split("<h2", 1)[0]
    assert "IT feed" in en and ">agrees<" in en and ">disagrees<" in en, en
    zh = html["zh"].split('<h2 id="reconciliation">', 1)[1].split("<h2", 1)[0]
    assert "计量对账" in zh and ">一致<" in zh, zh
