"""The simulator's PDUs reconciled with its Redfish BMCs end to end: `dcmeter simulate` writes
the agent config and site file, the real agent reads every device, the real collector computes
the window's reconciliation (issue 19, "Done means" item 2).

The site (worked by hand): four servers of 40-100 kW (rack-scale systems) behind Redfish BMCs
only (bmc_protocol = "redfish"), spread over two PDUs in order (pdu-001: server-0001/0002,
pdu-002: server-0003/0004), each PDU drawing pdu_loss_w = 300 W itself. The written site file
states per PDU loss = { fixed_w = 300 } (the model's own) and allowance = { fixed_w = A_w } with
A_w = 0.1 kWh × 3600 s/h × 1000 W/kW / 20 s = 18,000 W (reconcile_window_s = 20): the inlet
counter steps by 0.1 kWh (rPDU2, tenths of kWh), so a window's meter energy is off by less
than 0.1 kWh, which A covers for a window of at least 20 s (A = 18 kW × T >= 0.1 kWh).
A set "short" that leaves server-0002 out of pdu-001 misses E₂ >= 40 kW × T while
A + U <= 18 kW·T + 0.01·E_m + 0.05·E₁ <= (18 + 0.01 × 200.3 + 0.05 × 100) kW·T < 25.1 kW·T
(E_m <= 2 × 100 kW + 0.3 kW, E₁ <= 100 kW, per unit of T; U <= the plain sum of its terms):
it must disagree, and the written sets must agree.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from tests.peers.stack import sim_stack

AGENT_ID = "pdu-agent"
WINDOW_S = 20.0
STEP_KWH = 0.1


def test_each_pdu_reconciles_with_the_redfish_bmcs_behind_it(tmp_path: Path) -> None:
    simulate = (f"reconcile_window_s = {WINDOW_S:g}\n\n"
                "[site]\nservers = 4\nswitches = 0\nstorage = 0\nserver_idle_w = 40000\n"
                'server_max_w = 100000\nbmc_protocol = "redfish"\npdus = 2\npdu_loss_w = 300\n')
    # One server left out of pdu-001's set: its load unaccounted for.
    short = ('\n[[reconcile]]\nname = "short"\nmeter = "pdu-001"\n'
             'below = ["server-0001"]\nloss = { fixed_w = 300 }\n'
             "allowance = { fixed_w = 18000 }\n")
    with sim_stack(tmp_path, AGENT_ID, simulate, short) as stack:
        written = stack.written_site
        r = stack.window("start", "--kind", "infrastructure", "--json")
        assert r.returncode == 0, r.stderr
        wid = str(json.loads(r.stdout)["id"])
        time.sleep(WINDOW_S + 1)  # the window at least reconcile_window_s long
        r = stack.window("stop", wid)
        assert r.returncode == 0, r.stderr
        time.sleep(2.0)  # a poll after the end
        r = stack.window("status", wid, "--json")
        assert r.returncode == 0, r.stderr
        result = json.loads(r.stdout)

    assert 'below = ["server-0001", "server-0002"]' in written, written
    assert 'below = ["server-0003", "server-0004"]' in written, written
    sets = {s["name"]: s for s in result["reconciliation"]}
    assert set(sets) == {"pdu-001 inlet", "pdu-002 inlet", "short"}, sets
    for name in ("pdu-001 inlet", "pdu-002 inlet"):
        rec = sets[name]
        assert rec["verdict"] == "agrees", rec
        m, s, loss = rec["meter_kwh"], rec["below_kwh"], rec["expected_loss_kwh"]
        assert s > 2 * 40 * WINDOW_S / 3600, rec  # two servers of >= 40 kW for >= 20 s
        # The meter is the inlet counter (exact model: Σ outlets + 300 W), below the BMCs'
        # exact EnergykWh: D - L is the register step's error, under 0.1 kWh, plus the small
        # sampling error of interpolating both at the window's edges.
        assert abs(m - s - loss) < STEP_KWH + 0.01 * s, rec
        methods = {p["source"]: p["metric"] for p in rec["per_source"]}
        assert set(methods.values()) == {"energy_import_kwh"}, rec  # counters on both sides
    assert sets["short"]["verdict"] == "disagrees", sets["short"]
