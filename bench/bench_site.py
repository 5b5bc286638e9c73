"""Shared by the agent benchmarks: a simulated site and an agent config that reads it.

`dcmeter simulate` runs as a subprocess (its own process, as on a real site the devices are
not in the agent's process); it writes the `[[sources]]` of every device, which the agent
config here takes as they are. Extra Modbus meters (the simulator serves two: site total and
IT) can be served by `serve_meters`, run as `python bench/bench_site.py meters N PORTSFILE`:
branch meters behind the same `SimMeter` code, one TCP port each.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DCMETER = [sys.executable, "-m", "dcmeter"]
PASSWORD = "secret"  # the simulated BMCs' password (bench only)
COMMUNITY = "public"


@dataclass
class Site:
    """A running simulated site: its processes, devices and agent `[[sources]]` text."""

    procs: list[subprocess.Popen[bytes]]
    ports: list[dict[str, Any]]  # name, protocol, role, port
    sources_toml: str
    counts: dict[str, int] = field(default_factory=dict)

    def stop(self) -> None:
        """Stop every simulator process."""
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
        for p in self.procs:
            try:
                p.wait(10)
            except subprocess.TimeoutExpired:
                p.kill()


def simulate_toml(servers: int, switches: int, storage: int, ports_per_switch: int) -> str:
    """A simulate file for a site of this size (loads from seed 1, 10-minute swings)."""
    return f"""[simulate]
host = "127.0.0.1"
bmc_username = "admin"
bmc_password = "{PASSWORD}"
snmp_community = "{COMMUNITY}"

[site]
seed = 1
servers = {servers}
switches = {switches}
ports_per_switch = {ports_per_switch}
storage = {storage}
period_s = 600
"""


def _wait_file(path: Path, proc: subprocess.Popen[bytes], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not path.exists() or not path.stat().st_size:
        if proc.poll() is not None:
            raise SystemExit(f"simulator exited with {proc.returncode} before writing {path}")
        if time.monotonic() > deadline:
            raise SystemExit(f"simulator did not write {path} within {timeout_s:g} s")
        time.sleep(0.1)
    time.sleep(0.2)  # the file is written in one call; let it be complete


def start_site(
    work: Path, servers: int, switches: int, storage: int, extra_meters: int = 0,
    ports_per_switch: int = 4,
) -> Site:
    """Start `dcmeter simulate` (and `extra_meters` branch meters) and wait until they serve."""
    cfg = work / "simulate.toml"
    cfg.write_text(simulate_toml(servers, switches, storage, ports_per_switch))
    sources, ports = work / "sim-sources.toml", work / "sim-ports.json"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    sim = subprocess.Popen(
        [*DCMETER, "simulate", "-c", str(cfg), "--agent-config", str(sources),
         "--ports-file", str(ports)],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL,
    )
    procs = [sim]
    _wait_file(sources, sim, 120)
    text = sources.read_text()
    rows: list[dict[str, Any]] = json.loads(ports.read_text())
    if extra_meters:
        mports = work / "meter-ports.json"
        meters = subprocess.Popen(
            [sys.executable, __file__, "meters", str(extra_meters), str(mports)],
            cwd=ROOT, env=env,
        )
        procs.append(meters)
        _wait_file(mports, meters, 120)
        extra: list[dict[str, Any]] = json.loads(mports.read_text())
        rows.extend(extra)
        text += "\n" + "\n".join(
            f'[[sources]]\nid = "{r["name"]}"\nhost = "127.0.0.1"\nport = {r["port"]}\n'
            'type = "modbus"\nprofile = "eastron_sdm630"\naccuracy = 0.005\n'
            'labels = { point = "distribution" }\n'
            for r in extra
        )
    counts: dict[str, int] = {}
    for r in rows:
        counts[r["protocol"]] = counts.get(r["protocol"], 0) + 1
    return Site(procs, rows, text, counts)


def agent_toml(state_dir: Path, interval_s: float, sources_toml: str, timeout_s: float) -> str:
    """An agent config: no collector (batches stay in the buffer), the site's sources."""
    # Only the [[sources]] blocks: `dcmeter simulate` writes its own [agent] and [collector].
    blocks = sources_toml.split("[[sources]]\n", 1)
    sources_toml = "[[sources]]\n" + blocks[1] if len(blocks) == 2 else ""
    body = sources_toml.replace("[[sources]]\n", f"[[sources]]\ntimeout_s = {timeout_s:g}\n")
    return (
        f'[agent]\nid = "bench"\ninterval_s = {interval_s:g}\nstate_dir = "{state_dir}"\n\n'
        + body
    )


def free_port() -> int:
    """A free TCP port on loopback."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def serve_meters(n: int, ports_file: Path) -> None:
    """Serve `n` Eastron SDM630 branch meters (affine load swings) until SIGTERM."""
    import math

    from dcmeter.sim.meters import SimMeter

    t0 = time.time()
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)

    def values(i: int) -> Any:
        base_w = 8000.0 + 300.0 * i

        def now() -> dict[str, float]:
            t = time.time() - t0
            # 600 s swing of ±20 %; energy is its exact integral (kWh).
            w = base_w * (1 + 0.2 * math.sin(2 * math.pi * t / 600 + i))
            e_j = base_w * (t - 0.2 * 600 / (2 * math.pi) * (
                math.cos(2 * math.pi * t / 600 + i) - math.cos(i)))
            return {"power_w": w, "energy_import_kwh": 1000 + e_j / 3.6e6,
                    "energy_export_kwh": 0.0, "frequency_hz": 50.0}

        return now

    meters = []
    rows = []
    for i in range(n):
        meter = SimMeter("eastron_sdm630", values(i))
        port = await meter.start("127.0.0.1")
        meters.append(meter)
        rows.append({"name": f"meter-branch-{i:03d}", "protocol": "modbus",
                     "role": "distribution", "port": port})
    ports_file.write_text(json.dumps(rows) + "\n")
    await stop.wait()
    for m in meters:
        await m.stop()


if __name__ == "__main__" and sys.argv[1:2] == ["meters"]:
    asyncio.run(serve_meters(int(sys.argv[2]), Path(sys.argv[3])))
