"""Accuracy: energy and PUE measured at 60 s sampling against the simulator's true values.

    .venv/bin/python bench/accuracy.py [--hours 24] [--interval 60] [--profile eastron_sdm630]

The simulated site's physical model (dcmeter/sim/site.py: servers, switches and storage on
load swings, total = a × IT + b) gives exact energies. This script samples it every
`--interval` seconds the way the agent reads it — the meters' registers encoded as the meter
profile holds them and decoded as the agent's Modbus source decodes them (so float32 or
integer resolution is in the figures), the BMCs' DCMI power as whole watts — and evaluates
the window with the shared evaluation code: the total and IT meters' energy counters
(method "counter"), the same meters' power registers integrated (method
"integrated_power"), and the servers' point-8 energy integrated from their DCMI readings.
Each figure's error against the model's truth is printed and written as JSON. Goals
(issue 7): within 0.1 % from counters, 0.5 % from integrated power.
"""

from __future__ import annotations

import argparse
import json
import platform
from pathlib import Path
from typing import Any

from pymodbus.client import AsyncModbusTcpClient

from dcmeter.agent.sources.modbus_profiles import PROFILES, RegisterConfig
from dcmeter.collectors.evaluation.evaluate import evaluate
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site
from dcmeter.sim.meters import encode_registers
from dcmeter.sim.site import SimSite, SimSiteConfig

T0 = 1_793_491_200.0  # 2026-11-01T00:00:00Z
GOALS = {"counter": 0.001, "integrated_power": 0.005}
TYPES = {"float32": "FLOAT32", "float64": "FLOAT64", "u16": "UINT16", "i16": "INT16",
         "u32": "UINT32", "i32": "INT32", "u64": "UINT64", "i64": "INT64"}


def as_read(reg: RegisterConfig, value: float) -> float:
    """The value after a round trip through the meter's registers and the agent's decoding."""
    raw = AsyncModbusTcpClient.convert_from_registers(
        encode_registers(reg, value),
        data_type=AsyncModbusTcpClient.DATATYPE[TYPES[reg.type]],
        word_order=reg.word_order,
    )
    assert isinstance(raw, int | float)
    return float(raw) * reg.scale


def registers(profile: str) -> dict[str, RegisterConfig]:
    """The profile's energy and power registers by metric."""
    regs = {r.metric: r for r in PROFILES[profile]}
    missing = {"energy_import_kwh", "power_w"} - set(regs)
    if missing:
        raise SystemExit(f"profile {profile!r} lacks {sorted(missing)}")
    return regs


def sample(site: SimSite, regs: dict[str, RegisterConfig], hours: float,
           interval: float) -> list[Series]:
    """Every series as the agent would have read it, one sample per interval."""
    n = int(hours * 3600 / interval) + 3
    ts = [T0 - interval + i * interval for i in range(n)]
    out: list[Series] = []
    for role, sid in (("total", "meter-total"), ("it", "meter-it")):
        values = [site.meter_values(role, t) for t in ts]  # type: ignore[arg-type]
        point = "total" if role == "total" else "it_pdu"
        for metric, kind in (("energy_import_kwh", "counter"), ("power_w", "gauge")):
            reg = regs[metric]
            out.append(Series(sid, metric, reg.unit, kind, ts,
                              [as_read(reg, v[metric]) for v in values],
                              reg.effective_modulus, {"point": point}))
    for d in site.servers:  # DCMI Get Power Reading: whole watts
        out.append(Series(d.name, "power_w", "W", "gauge", ts,
                          [float(round(d.power_w(t))) for t in ts], labels={"point": "it_input"}))
    return out


def site_file() -> Site:
    """A site file with the total and IT meters (the method follows the series given)."""
    return Site.model_validate({
        "site": {"name": "accuracy", "region": "east-2023"},
        "energy": {"total": ["meter-total"], "it": ["meter-it"], "it_point": "it_pdu"},
    })


def main() -> None:
    """Sample the model, evaluate, print the errors."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--hours", type=float, default=24.0)
    p.add_argument("--interval", type=float, default=60.0)
    p.add_argument("--profile", default="eastron_sdm630")
    p.add_argument("--servers", type=int, default=8)
    p.add_argument("--period-s", type=float, default=1753.0,
                   help="period of the load swings (default 1753 s: not a divisor of the"
                   " window, so the trapezoid rule gets no help from whole periods)")
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args()

    cfg = SimSiteConfig(servers=args.servers, period_s=args.period_s,
                        total_start_kwh=182_345.6, it_start_kwh=121_987.25)
    site = SimSite.build(cfg, T0)
    start, end = T0, T0 + args.hours * 3600
    truth = site.truth(start, end)
    series = sample(site, registers(args.profile), args.hours, args.interval)
    rows: list[dict[str, Any]] = []
    counters = [s for s in series if s.metric != "power_w" or s.source.startswith("meter")]
    for method in ("counter", "integrated_power"):
        use = [s for s in counters if (s.kind == "counter") == (method == "counter")]
        r = evaluate("infrastructure", site_file(), use, start, end)
        for what in ("total", "it"):
            got = r["energy_kwh"][what]
            rows.append({"figure": f"E_{what}", "method": r["sources"][what]["method"],
                         "measured": got, "true": truth[what],
                         "error": got / truth[what] - 1})
        rows.append({"figure": "PUE", "method": method, "measured": r["pue"],
                     "true": truth["pue"], "error": r["pue"] / truth["pue"] - 1})
    servers = [s for s in series if s.source.startswith("server")]
    r = evaluate("infrastructure", Site.model_validate({
        "site": {"name": "accuracy", "region": "east-2023"},
        "energy": {"total": [s.source for s in servers], "it": [s.source for s in servers],
                   "it_point": "it_input"},
    }), servers, start, end)
    got = r["energy_kwh"]["it"]
    rows.append({"figure": "E_servers (point 8, DCMI)", "method": r["sources"]["it"]["method"],
                 "measured": got, "true": truth["servers"], "error": got / truth["servers"] - 1})
    for row in rows:
        goal = GOALS.get(row["method"])
        row["goal"] = goal
        row["met"] = None if goal is None or row["figure"] == "PUE" else abs(row["error"]) <= goal
    print(f"{args.hours:g} h at {args.interval:g} s, profile {args.profile}, swings of"
          f" {args.period_s:g} s, {args.servers} servers")
    print(f"{'figure':<28}{'method':<18}{'measured':>16}{'true':>16}{'error':>11}  goal")
    for row in rows:
        verdict = "" if row["met"] is None else ("met" if row["met"] else "MISSED")
        print(f"{row['figure']:<28}{row['method']:<18}{row['measured']:>16.6f}"
              f"{row['true']:>16.6f}{row['error']:>+10.4%}  {verdict}")
    if args.json is not None:
        args.json.write_text(json.dumps({
            "hours": args.hours, "interval_s": args.interval, "profile": args.profile,
            "period_s": args.period_s, "servers": args.servers, "rows": rows,
            "machine": f"{platform.machine()}, {platform.python_version()}"}, indent=1) + "\n")


if __name__ == "__main__":
    main()
