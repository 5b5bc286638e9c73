"""Benchmark: the agent at rest, 100 targets at its normal 60 s interval.

    .venv/bin/python bench/agent_at_rest.py [--minutes 10] [--malloc-arena-max N] [--json FILE]

`dcmeter simulate` serves 100 targets on loopback (80 BMCs over IPMI lanplus, 15 switches
and 3 storage systems over SNMP v2c, the site's 2 Modbus meters: a rack row's worth). The
agent runs as `dcmeter agent run` (no collector: batches are sealed, signed and kept in its
buffer) for `--minutes`. Every 10 s its process is sampled with psutil: CPU time (user +
system, all threads) and RSS. The agent tells its ticks through sd_notify: the benchmark
binds a NOTIFY_SOCKET and counts the STATUS= lines, one per tick.

Printed and written (`--json`): CPU share over the whole run and over the steady state (from
the end of the first tick: imports, key creation and session opens excluded), as % of one
core; RSS max and last; ticks; the agent's threads at the end; the simulator's own CPU
for reference. `--malloc-arena-max N` sets MALLOC_ARENA_MAX for the agent only, as
systemd/dcmeter-agent.service does (glibc's malloc arenas: one per thread that allocates,
up to 8 per core).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import psutil

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_site import DCMETER, ROOT, agent_toml, start_site

SAMPLE_S = 10.0
GOAL_CPU_PCT = 1.0
GOAL_RSS_MB = 60.0  # issue 20 (issue 7: 80)


def cpu_s(p: psutil.Process) -> float:
    """User + system CPU seconds of `p` (all its threads)."""
    t = p.cpu_times()
    return float(t.user + t.system)


def run(minutes: float, interval_s: float, arena_max: int | None = None) -> dict[str, Any]:
    """Run the site and the agent for `minutes`; return the figures."""
    with tempfile.TemporaryDirectory(prefix="dcmeter-rest-") as tmp:
        work = Path(tmp)
        site = start_site(work, servers=80, switches=15, storage=3)
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify_path = work / "notify.sock"
        notify.bind(str(notify_path))
        notify.setblocking(False)
        cfg = work / "agent.toml"
        cfg.write_text(agent_toml(work / "state", interval_s, site.sources_toml, 5.0))
        (work / "state").mkdir()
        env = {**os.environ, "PYTHONPATH": str(ROOT), "NOTIFY_SOCKET": str(notify_path)}
        env.pop("MALLOC_ARENA_MAX", None)
        if arena_max is not None:
            env["MALLOC_ARENA_MAX"] = str(arena_max)
        log = (work / "agent.log").open("wb")
        agent = subprocess.Popen([*DCMETER, "agent", "run", "-c", str(cfg)], cwd=ROOT, env=env,
                                 stdout=log, stderr=subprocess.STDOUT)
        proc = psutil.Process(agent.pid)
        sims = [psutil.Process(p.pid) for p in site.procs]
        sim_cpu0 = sum(cpu_s(s) for s in sims)
        started = time.monotonic()
        samples: list[dict[str, float]] = []
        ticks: list[float] = []
        first_tick: tuple[float, float] | None = None  # (wall, cpu) after the first tick
        try:
            end = started + minutes * 60
            while time.monotonic() < end:
                time.sleep(min(SAMPLE_S, max(0.0, end - time.monotonic())))
                if agent.poll() is not None:
                    raise SystemExit(f"agent exited with {agent.returncode}; see its log")
                now, cpu = time.monotonic(), cpu_s(proc)
                while True:
                    try:
                        msg = notify.recv(4096).decode()
                    except BlockingIOError:
                        break
                    if "STATUS=polling" in msg and "READY=1" not in msg:
                        ticks.append(now - started)
                        if first_tick is None:
                            first_tick = (now, cpu)
                rss = proc.memory_info().rss / 2**20
                samples.append({"t_s": round(now - started, 1), "cpu_s": round(cpu, 3),
                                "rss_mb": round(rss, 1)})
            wall = time.monotonic() - started
            cpu_total = cpu_s(proc)
            sim_cpu = sum(cpu_s(s) for s in sims) - sim_cpu0
            threads = proc.num_threads()
        finally:
            agent.terminate()
            agent.wait(30)
            site.stop()
            log.close()
            notify.close()
        failed = (work / "agent.log").read_text().count('"target failed"')
    steady: dict[str, float] | None = None
    if first_tick is not None and wall - (first_tick[0] - started) > 0:
        span = started + wall - first_tick[0]
        steady = {"wall_s": round(span, 1), "cpu_s": round(cpu_total - first_tick[1], 3),
                  "cpu_pct": round(100 * (cpu_total - first_tick[1]) / span, 3)}
    rss_series = [s["rss_mb"] for s in samples]
    return {
        "benchmark": "agent_at_rest",
        "targets": site.counts,
        "interval_s": interval_s,
        "minutes": minutes,
        "wall_s": round(wall, 1),
        "ticks": len(ticks),
        "targets_failed_log_lines": failed,
        "cpu_s": round(cpu_total, 3),
        "cpu_pct_whole_run": round(100 * cpu_total / wall, 3),
        "steady": steady,
        "rss_mb_max": max(rss_series),
        "rss_mb_last": rss_series[-1],
        "agent_threads": threads,
        "malloc_arena_max": arena_max,
        "simulator_cpu_s": round(sim_cpu, 3),
        "samples": samples,
        "goal": {"cpu_pct_below": GOAL_CPU_PCT, "rss_mb_below": GOAL_RSS_MB},
        "machine": machine(),
    }


def machine() -> dict[str, Any]:
    """Cores, CPU model, Python, date."""
    model = ""
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return {"cores": os.cpu_count(), "cpu": model, "python": platform.python_version(),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "loadavg_1_5_15": os.getloadavg()}


def main() -> int:
    """Parse arguments, run, print the table, write the JSON."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--minutes", type=float, default=10.0, help="how long to run (default 10)")
    ap.add_argument("--interval", type=float, default=60.0, help="agent interval_s (default 60)")
    ap.add_argument("--malloc-arena-max", type=int, default=None,
                    help="MALLOC_ARENA_MAX for the agent (default: unset, glibc's own)")
    ap.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = ap.parse_args()
    if args.minutes <= 0 or args.interval < 1:
        print("agent_at_rest: --minutes must be > 0 and --interval >= 1", file=sys.stderr)
        return 2
    r = run(args.minutes, args.interval, args.malloc_arena_max)
    steady = r["steady"] or {}
    cpu_pct = steady.get("cpu_pct", r["cpu_pct_whole_run"])
    rows = [
        ("targets", ", ".join(f"{n} {p}" for p, n in sorted(r["targets"].items()))),
        ("run", f"{r['wall_s']:.0f} s, {r['ticks']} ticks at {r['interval_s']:g} s"),
        ("CPU, whole run", f"{r['cpu_s']:.2f} s = {r['cpu_pct_whole_run']:.3f} % of one core"),
        ("CPU, after first tick",
         f"{steady.get('cpu_s', float('nan')):.2f} s over {steady.get('wall_s', 0):.0f} s"
         f" = {cpu_pct:.3f} % of one core"),
        ("RSS max / last", f"{r['rss_mb_max']:.1f} / {r['rss_mb_last']:.1f} MB"),
        ("agent threads", f"{r['agent_threads']} (MALLOC_ARENA_MAX="
                          f"{r['malloc_arena_max'] or 'unset'})"),
        ("simulator CPU", f"{r['simulator_cpu_s']:.2f} s"),
        ("goal", f"CPU < {GOAL_CPU_PCT} %: {'met' if cpu_pct < GOAL_CPU_PCT else 'MISSED'};"
                 f" RSS < {GOAL_RSS_MB:g} MB: "
                 f"{'met' if r['rss_mb_max'] < GOAL_RSS_MB else 'MISSED'}"),
    ]
    width = max(len(k) for k, _ in rows)
    for k, v in rows:
        print(f"{k:<{width}}  {v}")
    if args.json:
        args.json.write_text(json.dumps(r, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
