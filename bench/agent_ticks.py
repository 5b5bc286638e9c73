"""Run the agent's own tick (read all sources, commit, seal, sign) on aligned instants, timed.

    .venv/bin/python bench/agent_ticks.py AGENT.toml --cycles 10 --interval 10

Run by bench/poll_cycle.py in a process of its own, so its CPU and RSS are the agent's
alone. `dcmeter.agent.daemon.Agent` is built from the config as `dcmeter agent run` builds it; its
`tick()` is awaited on wall-clock multiples of `--interval` (as the scheduler would fire it)
and timed: wall (time.perf_counter) and CPU of the whole process, all threads included
(time.process_time), during the tick (`cpu_s`) and since the end of the previous tick
(`cpu_interval_s`: adds what runs between ticks, such as BMC session keep-alives). One JSON
line per tick: index, wall_s, cpu_s, cpu_interval_s, sources that failed in that tick.
Before the ticks, the agent's start-up phase (`Agent.start_up()`, agent/startup.py, as
`dcmeter agent run` does it) opens every BMC session, makes the SNMP engine and walks the
tables; it is timed apart (one `startup` JSON line). `--no-startup` leaves that to the first
tick, as the agent did before the start-up phase: the "before" of docs/benchmarks.md.
`--profile FILE` runs the ticks after the first under cProfile and writes its stats to FILE
(profiled ticks cost more: for proportions, not for the table).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import math
import sys
import time
from pathlib import Path

from dcmeter.agent import config
from dcmeter.agent.daemon import Agent, close_sources
from dcmeter.base import log


async def drive(path: Path, cycles: int, interval_s: float, startup: bool,
                profile: Path | None = None) -> None:
    """Build the agent, set it up, run `cycles` + 1 ticks, print one JSON line per tick;
    with `profile`, the ticks after the first run under cProfile, its stats written there."""
    agent = Agent(config.load(path))
    print(json.dumps({"ready": True, "sources": len(agent.sources)}), flush=True)
    if startup:
        c0, t0 = time.process_time(), time.perf_counter()
        done = await agent.start_up()
        print(json.dumps({"startup": True, "wall_s": time.perf_counter() - t0,
                          "cpu_s": time.process_time() - c0, "prepared": done.prepared,
                          "failed": sorted(done.failed), "unfinished": list(done.unfinished)}),
              flush=True)
    last_cpu = time.process_time()
    prof = cProfile.Profile() if profile else None
    try:
        for i in range(cycles + 1):
            now = time.time()
            await asyncio.sleep(math.floor(now / interval_s + 1) * interval_s - now)
            before = dict(agent.poller.failures)
            c0, t0 = time.process_time(), time.perf_counter()
            if prof and i:
                prof.enable()
            await agent.tick()
            if prof and i:
                prof.disable()
            wall, c1 = time.perf_counter() - t0, time.process_time()
            failed = sorted(s for s, n in agent.poller.failures.items() if n > before.get(s, 0))
            print(json.dumps({"tick": i, "wall_s": wall, "cpu_s": c1 - c0,
                              "cpu_interval_s": c1 - last_cpu, "failed": failed}), flush=True)
            last_cpu = c1
    finally:
        if prof and profile:
            prof.dump_stats(profile)
        await close_sources(agent.sources)
        agent.buffer.close()


def main() -> int:
    """Parse arguments and drive the ticks."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("config", type=Path)
    ap.add_argument("--cycles", type=int, default=10)
    ap.add_argument("--interval", type=float, default=10.0)
    ap.add_argument("--no-startup", action="store_true",
                    help="no start-up phase: the first tick sets the sources up")
    ap.add_argument("--profile", type=Path, default=None,
                    help="write cProfile stats of the ticks after the first to this file")
    args = ap.parse_args()
    log.setup(sys.stderr)  # stdout carries the tick lines only
    asyncio.run(drive(args.config, args.cycles, args.interval, not args.no_startup,
                      args.profile))
    return 0


if __name__ == "__main__":
    sys.exit(main())
