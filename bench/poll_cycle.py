"""Benchmark: one poll cycle over 1,000 simulated targets, the agent beside the tools in use.

    .venv/bin/python bench/poll_cycle.py [--bmcs 600 --switches 200 --meters 200]
        [--cycles 10] [--interval 10] [--concurrency 64] [--tools ours,ipmi,snmp,collectd]
        [--json FILE]

The site (`dcmeter simulate` in its own process, plus the branch meters beyond its two site
meters in another, see bench_site.py) is read in turn by:

- ours: the agent's own `Agent.tick()` (read every source, commit to the SQLite buffer,
  seal and sign; no collector) on wall-clock multiples of `--interval`, in a process of its
  own (bench/agent_ticks.py), timed inside: wall and CPU of the process during the tick;
  RSS is its peak. The start-up phase before the first tick (BMC sessions, SNMP socket,
  table walks; agent/startup.py) and the first tick are reported apart; `--no-startup`
  leaves the set-up to the first tick, as the agent did before. Failed reads are counted in
  every tick, the first included.
- prometheus-ipmi-exporter: every BMC scraped at /ipmi?target=127.0.0.1:PORT, DCMI collector
  (FreeIPMI's `ipmi-dcmi` run per target: its CPU counts, as the exporter's waited children).
- prometheus-snmp-exporter: every switch at /snmp?target=127.0.0.1:PORT, module if_hc.
- collectd: modbus plugin for the meters and snmp plugin for the switches; one sweep timed
  in test mode (`collectd -T`, process start included), the daemon's CPU per interval.

Exporters are scraped with `--concurrency` requests in flight, as a Prometheus server would,
by threads of http.client whose own CPU is reported beside each sweep, with the exporters'
own reported scrape durations; the sweep timed from the first request to the last answer;
the first sweep is reported apart, its failures counted. Each tool reads only the kinds of
target it can: that is part of the table.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
import exporters
from agent_at_rest import machine
from bench_site import ROOT, agent_toml, start_site

GOAL_WALL_S = 2.0
TOOLS = ("ours", "ipmi", "snmp", "collectd")
# With --split, the agent again on one kind of target at a time: its cost per protocol, to
# set beside the anchors that read only that kind.
# "ours-snmp-modbus": what collectd reads, in one agent (the sum of two split runs counts
# the per-tick commit and seal twice).
SPLIT = {"ours-ipmi": "ipmi", "ours-snmp": "snmp", "ours-modbus": "modbus",
         "ours-snmp-modbus": "snmp+modbus"}


def only(sources_toml: str, kind: str) -> str:
    """The `[[sources]]` blocks of one type (`snmp+modbus`: of either)."""
    blocks = sources_toml.split("[[sources]]\n")
    return "".join("[[sources]]\n" + b for b in blocks[1:]
                   if any(f'type = "{k}"' in b for k in kind.split("+")))


def run_ours(work: Path, sources_toml: str, interval_s: float, cycles: int,
             timeout_s: float, startup: bool = True, root: Path = ROOT,
             profile: Path | None = None) -> dict[str, Any]:
    """Run the agent's tick `cycles` + 1 times in its own process (bench/agent_ticks.py):
    the agent of the source tree `root` (another checkout: a before/after pair), its ticks
    after the first under cProfile with `profile` (stats written there)."""
    state = work / "state"
    state.mkdir()
    cfg = work / "agent.toml"
    cfg.write_text(agent_toml(state, interval_s, sources_toml, timeout_s))
    env = {**os.environ, "PYTHONPATH": str(root)}
    with (work / "agent.log").open("wb") as log:
        agent = subprocess.Popen(
            [sys.executable, str(root / "bench" / "agent_ticks.py"), str(cfg),
             "--cycles", str(cycles), "--interval", f"{interval_s:g}",
             *([] if startup else ["--no-startup"]),
             *([] if profile is None else ["--profile", str(profile)])],
            cwd=root, env=env, stdout=subprocess.PIPE, stderr=log,
        )
    assert agent.stdout is not None
    ps = psutil.Process(agent.pid)
    rss = exporters.RssSampler(ps)
    ticks: list[dict[str, Any]] = []
    setup: dict[str, Any] | None = None
    threads = 0
    try:
        for line in agent.stdout:
            if not line.startswith(b'{"'):
                continue
            rec = json.loads(line)
            if "startup" in rec:
                setup = rec
            if "tick" in rec:
                ticks.append(rec)
                threads = max(threads, ps.num_threads())
        rss_mb = rss.stop()
    finally:
        if agent.wait(60) != 0:
            raise SystemExit(f"agent_ticks exited with {agent.returncode}: see {work}/agent.log")
    if len(ticks) != cycles + 1:
        raise SystemExit(f"agent_ticks ran {len(ticks)} ticks, not {cycles + 1}")
    rest = ticks[1:]
    total = sources_toml.count("[[sources]]")
    failed = sorted({s for t in rest for s in t["failed"]})
    return {
        "targets": total,
        "ok_min": min(total - len(t["failed"]) for t in rest),
        "failed_examples": failed[:5],
        "first": {"wall_s": round(ticks[0]["wall_s"], 3), "cpu_s": round(ticks[0]["cpu_s"], 3),
                  "failed": len(ticks[0]["failed"])},
        # Every failed read of every tick, the first included (a target failing in two ticks
        # counts twice).
        "failed_reads_all_ticks": sum(len(t["failed"]) for t in ticks),
        "startup": None if setup is None else {
            "wall_s": round(setup["wall_s"], 3), "cpu_s": round(setup["cpu_s"], 3),
            "prepared": setup["prepared"], "failed": len(setup["failed"]),
            "unfinished": len(setup["unfinished"])},
        "wall_s_mean": round(sum(t["wall_s"] for t in rest) / len(rest), 3),
        "wall_s_max": round(max(t["wall_s"] for t in rest), 3),
        "cpu_s_mean": round(sum(t["cpu_s"] for t in rest) / len(rest), 3),
        "cpu_interval_s_mean": round(sum(t["cpu_interval_s"] for t in rest) / len(rest), 3),
        "rss_mb_max": round(rss_mb, 1),
        "threads": threads,
        "interval_s": interval_s,
        "cycles": [{"wall_s": round(t["wall_s"], 3), "cpu_s": round(t["cpu_s"], 3),
                    "cpu_interval_s": round(t["cpu_interval_s"], 3), "failed": len(t["failed"])}
                   for t in rest],
    }


def table(results: dict[str, Any]) -> str:
    """One row per tool: targets read OK, cycle wall, CPU per cycle, RSS."""
    head = ("tool", "reads", "targets OK", "start-up s", "first cycle s (failed)",
            "cycle wall s (mean/max)", "CPU s/cycle", "RSS MB")
    rows = [head]
    for name, r in results.items():
        if "error" in r:
            rows.append((name, r.get("reads", ""), "-", "-", "-", r["error"], "-", "-"))
            continue
        if name == "collectd":
            rows.append((name, r["reads"], f"{r['ok_min']}/{r['targets']}", "-",
                         f"{r['test_mode_wall_s']:.2f} (-T)", f"{r['test_mode_wall_s']:.2f} (-T)",
                         f"{r['cpu_s_per_interval']:.3f}", f"{r['rss_mb_max']:.0f}"))
            continue
        up = r.get("startup")
        rows.append((name, r["reads"], f"{r['ok_min']}/{r['targets']}",
                     f"{up['wall_s']:.2f}" if up else "-",
                     f"{r['first']['wall_s']:.2f} ({r['first'].get('failed', 0)})",
                     f"{r['wall_s_mean']:.2f} / {r['wall_s_max']:.2f}",
                     f"{r['cpu_s_mean']:.3f}", f"{r['rss_mb_max']:.0f}"))
    widths = [max(len(str(row[i])) for row in rows) for i in range(len(head))]
    lines = ["  ".join(str(c).ljust(w) for c, w in zip(row, widths, strict=True))
             for row in rows]
    for name, r in results.items():
        if "failed_reads_all_ticks" in r:
            lines.append(f"{name}: failed reads over every tick, the first included: "
                         f"{r['failed_reads_all_ticks']}")
        if "client_cpu_s_mean" in r:  # an exporter: what the scraping client cost, beside it
            lines.append(
                f"{name}: failed reads over every sweep, the first included: "
                f"{r['failed_reads_all_sweeps']}; scraping client CPU "
                f"{r['client_cpu_s_mean']:.3f} s/sweep; the exporter's own scrape durations "
                f"median {r['reported_scrape_s_median']} s, max {r['reported_scrape_s_max']} s")
    return "\n".join(lines)


def main() -> int:
    """Parse arguments, run each tool against one site, print the table, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--bmcs", type=int, default=600)
    ap.add_argument("--switches", type=int, default=200)
    ap.add_argument("--meters", type=int, default=200, help="Modbus meters, >= 2")
    ap.add_argument("--cycles", type=int, default=10, help="cycles measured per tool")
    ap.add_argument("--interval", type=float, default=10.0, help="agent/collectd interval, s")
    ap.add_argument("--timeout", type=float, default=5.0, help="agent per-target timeout_s")
    ap.add_argument("--concurrency", type=int, default=64, help="exporter scrapes in flight")
    ap.add_argument("--read-threads", type=int, default=16, help="collectd ReadThreads")
    ap.add_argument("--tools", default=",".join(TOOLS), help="subset of " + ",".join(TOOLS))
    ap.add_argument("--split", action="store_true",
                    help="also run the agent on each kind of target alone (ours-ipmi, …)")
    ap.add_argument("--no-startup", action="store_true",
                    help="the agent without its start-up phase (its first tick sets up)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    ap.add_argument("--pair", type=Path, default=None, metavar="ROOT",
                    help="then the agent on switches and meters from another source tree "
                         "(before) and from this one (after), alternating, --rounds times")
    ap.add_argument("--rounds", type=int, default=2, help="before/after rounds with --pair")
    ap.add_argument("--profile", type=Path, default=None, metavar="DIR",
                    help="profile each agent run's ticks after the first: DIR/<tool>.prof")
    args = ap.parse_args()
    tools = [t.strip() for t in args.tools.split(",") if t.strip()]
    bad = [t for t in tools if t not in TOOLS]
    if bad or args.meters < 2 or args.cycles < 1 or args.interval < 1:
        print(f"poll_cycle: bad arguments: tools {bad or 'ok'} (valid: {', '.join(TOOLS)}); "
              "--meters >= 2, --cycles >= 1, --interval >= 1", file=sys.stderr)
        return 2
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(prefix="dcmeter-cycle-") as tmp:
        work = Path(tmp)
        t0 = time.monotonic()
        site = start_site(work, servers=args.bmcs, switches=args.switches, storage=0,
                          extra_meters=args.meters - 2)
        print(f"site: {site.counts} started in {time.monotonic() - t0:.1f} s", flush=True)
        sims = [psutil.Process(p.pid) for p in site.procs]
        by = {k: [r for r in site.ports if r["protocol"] == k] for k in ("ipmi", "snmp", "modbus")}
        try:
            pairs = [f"pair-{side}-{r}" for r in range(args.rounds if args.pair else 0)
                     for side in ("before", "after")]
            for tool in tools + (list(SPLIT) if args.split else []) + pairs:
                c0 = sum(exporters.cpu_s(s) for s in sims)
                t0 = time.monotonic()
                try:
                    r = run_tool(tool, work, site, by, args)
                except SystemExit as exc:  # a tool that cannot run is a finding
                    r = {"error": str(exc)}
                r["reads"] = READS.get(tool, "switches, meters")
                r["simulator_cpu_s"] = round(sum(exporters.cpu_s(s) for s in sims) - c0, 3)
                r["tool_run_s"] = round(time.monotonic() - t0, 1)
                r["loadavg_1min_after"] = os.getloadavg()[0]  # others sharing the machine
                results[tool] = r
                print(f"{tool}: done in {r['tool_run_s']:.0f} s", flush=True)
        finally:
            site.stop()
    out = {"benchmark": "poll_cycle", "targets": site.counts, "args": {
        k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "results": results,
        "goal": {"cycle_wall_s_within": GOAL_WALL_S}, "machine": machine()}
    print(table(results))
    for side in ("before", "after"):  # the pair: every tick of every round of one side
        cpu = sorted(c["cpu_s"] for k, r in results.items() if k.startswith(f"pair-{side}")
                     for c in r.get("cycles", []))
        if cpu:
            print(f"pair {side}: CPU ms per tick median {1e3 * cpu[len(cpu) // 2]:.1f}, "
                  f"mean {1e3 * sum(cpu) / len(cpu):.1f}, min {1e3 * cpu[0]:.1f} "
                  f"({len(cpu)} ticks)")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1) + "\n")
    return 0


READS = {
    "ours": "BMCs, switches, meters",
    "ipmi": "BMCs only",
    "snmp": "switches only",
    "collectd": "switches, meters (no IPMI plugin for remote DCMI)",
    "ours-ipmi": "BMCs only",
    "ours-snmp": "switches only",
    "ours-modbus": "meters only",
    "ours-snmp-modbus": "switches, meters",
}


def run_tool(tool: str, work: Path, site: Any, by: dict[str, list[dict[str, Any]]],
             args: argparse.Namespace) -> dict[str, Any]:
    """Run one tool against the site."""
    sub = work / tool
    sub.mkdir()
    profile = None if args.profile is None else args.profile.resolve() / f"{tool}.prof"
    if tool == "ours":
        return run_ours(sub, site.sources_toml, args.interval, args.cycles, args.timeout,
                        not args.no_startup, profile=profile)
    if tool in SPLIT:
        return run_ours(sub, only(site.sources_toml, SPLIT[tool]), args.interval, args.cycles,
                        args.timeout, not args.no_startup, profile=profile)
    if tool.startswith("pair-"):  # switches and meters, the agent of one side of the pair
        root = args.pair.resolve() if tool.startswith("pair-before") else ROOT
        return run_ours(sub, only(site.sources_toml, "snmp+modbus"), args.interval,
                        args.cycles, args.timeout, not args.no_startup, root, profile)
    if tool == "ipmi":
        return exporters.ipmi_exporter(by["ipmi"], sub, args.cycles, args.concurrency)
    if tool == "snmp":
        return exporters.snmp_exporter(by["snmp"], sub, args.cycles, args.concurrency)
    return exporters.collectd(by["modbus"], by["snmp"], sub, args.cycles, args.interval,
                              args.read_threads)


if __name__ == "__main__":
    sys.exit(main())
