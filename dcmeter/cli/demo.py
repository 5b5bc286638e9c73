"""`dcmeter demo`: a simulated site, a collector and an agent on loopback, one window, its PUE.

The simulated site of `dcmeter simulate` (Modbus TCP meters, BMCs over IPMI lanplus with
DCMI, SNMP switches and storage, all following one physical model that knows the true
energies) runs in this process; the collector and the agent run as the real daemons, in child
processes, on configuration files written into the data directory.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from dcmeter.agent import keys, pubkey
from dcmeter.base.configfile import ConfigError
from dcmeter.cli.render import print_result
from dcmeter.collectors.evaluation.energy import integrated_energy
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339, rfc3339
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.auth import create_token
from dcmeter.sim.pdu import reconcile_toml
from dcmeter.sim.serve import Endpoint, SimEndpoints, Simulation, agent_sources, sources_toml
from dcmeter.sim.site import SimSite, SimSiteConfig

AGENT_ID = "demo-agent"
# A few devices of a site of about 1 MW, whose loads swing fast enough to show in a short
# window: the meters count whole Wh, so the site must be large for a window of seconds.
DEMO_SITE = SimSiteConfig(servers=4, switches=1, storage=1, other_it_kw=800.0, period_s=20.0)
# The demo's own site adds one metered PDU (over SNMP) in front of its servers, whose
# BMCs serve Redfish beside IPMI: the window's reconciliation checks the PDU's inlet against them.
# Raritan PDU2-MIB counts whole Wh (APC rPDU2 tenths of kWh, too coarse for a window of 30 s).
DEMO_RUN_SITE = DEMO_SITE.model_copy(
    update={"pdus": 1, "bmc_protocol": "both", "pdu_profile": "raritan_pdu2"})
PUE_TOLERANCE = 0.01  # the demo fails if the measured PUE is further than 1 % from the truth


class Simulator:
    """The simulated site (`dcmeter simulate`'s devices), served from a background thread."""

    def __init__(self, site: SimSite) -> None:
        self.site = site
        self.settings = SimEndpoints()
        self.simulation = Simulation(site, self.settings)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> list[Endpoint]:
        """Start every device; return where each listens."""
        self.thread.start()
        return asyncio.run_coroutine_threadsafe(self.simulation.start(), self.loop).result(30)

    def stop(self) -> None:
        """Stop the devices and the loop."""
        asyncio.run_coroutine_threadsafe(self.simulation.stop(), self.loop).result(30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(5)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def write_configs(
    data: Path, sim: Simulator, endpoints: list[Endpoint], collector_port: int,
    window_s: float = 3600.0,
) -> dict[str, Path]:
    """Write the agent, collector and site files the demo runs on; return their paths.

    With PDUs, the site file gets one [[reconcile]] set per PDU whose allowance covers the
    inlet counter's step over a window of at least `window_s` (sim/pdu.py)."""
    paths = {name: data / f"{name}.toml" for name in ("agent", "collector", "site")}
    pdus = sim.simulation.pdus
    sources = agent_sources(endpoints, sim.settings, None, pdus)
    for source in sources:
        source["timeout_s"] = 0.8
    sources.append({"id": "host", "type": "host", "timeout_s": 0.8})
    paths["agent"].write_text(
        f"""# written by `dcmeter demo`
[agent]
id = "{AGENT_ID}"
interval_s = 1
state_dir = "{data / 'agent-state'}"

[collector]
url = "http://127.0.0.1:{collector_port}"
backoff_initial_s = 0.2
backoff_max_s = 2

"""
        + sources_toml(sources)
    )
    paths["collector"].write_text(
        f"""# written by `dcmeter demo`
[collector]
host = "127.0.0.1"
port = {collector_port}
store = "collector.sqlite"
site = "site.toml"
keys_dir = "agents"
"""
    )
    paths["site"].write_text(
        """# written by `dcmeter demo`
[site]
name = "dcmeter demo site"
region = "east-2023"

[energy]
total = ["meter-total"]
it = ["meter-it"]
it_point = "it_pdu"
"""
        + "".join(reconcile_toml(p, sim.site.config.bmc_protocol, window_s) for p in pdus)
    )
    return paths


@contextmanager
def _daemon(args: list[str], logfile: Path) -> Iterator[subprocess.Popen[bytes]]:
    with logfile.open("wb") as log:
        proc = subprocess.Popen(
            [sys.executable, "-m", "dcmeter", *args], stdout=log, stderr=subprocess.STDOUT
        )
        try:
            yield proc
        finally:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(15)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()


def _wait_for(pred: Any, what: str, timeout: float, procs: list[subprocess.Popen[bytes]]) -> Any:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for p in procs:
            if p.poll() is not None:
                raise RuntimeError(f"{what}: a daemon exited with status {p.returncode}")
        try:
            value = pred()
        except httpx.HTTPError:
            value = None
        if value:
            return value
        time.sleep(0.2)
    raise RuntimeError(f"{what}: gave up after {timeout:g} s")


def run_demo(seconds: float = 30.0, data_dir: Path | None = None) -> int:
    """Run the demo; return 0 if the measured PUE is within 1 % of the simulator's truth."""
    console = Console()
    data = data_dir or Path(tempfile.mkdtemp(prefix="dcmeter-demo-"))
    if data.exists() and any(data.iterdir()):
        raise ConfigError(
            f"--data-dir {data}: not empty; give a new or empty directory (the demo's store,"
            " keys and buffer must start fresh for its result to mean anything)"
        )
    data.mkdir(parents=True, exist_ok=True)
    site = SimSite.build(DEMO_RUN_SITE, time.time())
    sim = Simulator(site)
    endpoints = sim.start()
    cport = _free_port()
    paths = write_configs(data, sim, endpoints, cport, seconds)
    key = keys.load_or_create(data / "agent-state")
    (data / "agents").mkdir(exist_ok=True)
    (data / "agents" / f"{AGENT_ID}.pub").write_text(pubkey.public_text(key.public_key()) + "\n")
    store = Store(data / "collector.sqlite")  # the demo is its own field engineer
    try:
        _, token = create_token(store, "engineer", "demo")
    finally:
        store.close()
    console.print(f"[bold]dcmeter demo[/bold] · data directory: {data}")
    counts = {p: sum(e.protocol == p for e in endpoints)
              for p in ("modbus", "ipmi", "snmp", "redfish")}
    n_pdus = sum(e.role == "pdu" for e in endpoints)
    console.print(
        f"  simulated site on 127.0.0.1: {counts['modbus']} Modbus TCP meters (total: Eastron "
        f"SDM630, IT: Schneider PM5100), {counts['ipmi']} BMCs (IPMI lanplus, DCMI) also "
        f"serving Redfish ({counts['redfish']}), {counts['snmp']} SNMP agents (switches, "
        f"storage, {n_pdus} metered PDU, {DEMO_RUN_SITE.pdu_profile}); collector on :{cport}"
    )
    base = f"http://127.0.0.1:{cport}/api/v1"
    try:
        with (
            _daemon(["collector", "serve", "-c", str(paths["collector"])],
                    data / "collector.log") as coll,
            httpx.Client(timeout=10, headers={"Authorization": f"Bearer {token}"}) as http,
        ):
            _wait_for(lambda: http.get(f"{base}/health").is_success, "collector start", 30, [coll])
            with _daemon(["agent", "run", "-c", str(paths["agent"])], data / "agent.log") as ag:
                procs = [coll, ag]
                _wait_for(
                    lambda: http.get(f"{base}/health").json()["samples"] > 0,
                    "first samples", 30, procs,
                )
                time.sleep(1.5)  # a sample before the window opens, to interpolate its start
                win = http.post(f"{base}/windows", json={"kind": "infrastructure",
                                                          "note": "dcmeter demo"}).json()
                _progress(console, http, f"{base}/windows/{win['id']}", seconds, procs)
                # The result is computed once, at the stop (collectors/results/frozen.py): stop with
                # the end as of now once a sample after it is stored, to interpolate it.
                end_at = rfc3339(time.time())
                time.sleep(2.5)
                http.post(f"{base}/windows/{win['id']}/stop",
                          json={"end": end_at}).raise_for_status()
                result = http.get(f"{base}/windows/{win['id']}").json()
    finally:
        sim.stop()
    start = parse_rfc3339(result["window"]["start"])
    end = parse_rfc3339(result["window"]["end"])
    truth = site.truth(start, end)
    print_result(result, truth, console)
    _print_point8(console, data / "collector.sqlite", site, start, end)
    # One definition of the error, as the table's: (measured - true) / true, signed.
    agreed = _print_reconciliation(console, result)
    err = (result["pue"] - truth["pue"]) / truth["pue"] if result["pue"] else 1.0
    ok = abs(err) <= PUE_TOLERANCE and agreed
    console.print(
        f"PUE {result['pue']:.4f} vs true {truth['pue']:.4f}: error {err * 100:+.3f} % "
        + ("[green](within 1 %)[/green]" if ok else "[red](beyond 1 %)[/red]")
    )
    console.print(f"Data, configs and logs are in {data}")
    return 0 if ok else 1


def _print_reconciliation(console: Console, result: dict[str, Any]) -> bool:
    """Each [[reconcile]] set's figures (kWh) and verdict; whether every set agreed."""
    sets = result.get("reconciliation") or []
    for r in sets:
        if r["verdict"] == "not_computed":
            console.print(f"Reconciliation {r['name']}: not computed")
            continue
        colour = "green" if r["verdict"] == "agrees" else "red"
        console.print(
            f"Reconciliation {r['name']}: meter {r['meter_kwh']:.5f} kWh vs below "
            f"{r['below_kwh']:.5f} kWh (BMCs over Redfish): D {r['difference_kwh']:+.5f}, "
            f"expected loss {r['expected_loss_kwh']:.5f}, allowance {r['allowance_kwh']:.5f} "
            f"(the PDU's register step), U {r['uncertainty_kwh']:.5f}: "
            f"[{colour}]{r['verdict']}[/{colour}]"
        )
    if sets:
        console.print("  (the allowance is the PDU inlet counter's 1 Wh step, stated as a power"
                      " over the window: 120 W for 30 s; the expected loss is the model's, 0)")
    return all(r["verdict"] == "agrees" for r in sets)


def _print_point8(console: Console, db: Path, site: SimSite, start: float, end: float) -> None:
    """The servers' own input (GB 40879 point 8, DCMI power integrated) against the truth."""
    store = Store(db)
    try:
        names = [d.name for d in site.servers]
        series = [s for s in store.series(names, int((start - 5) * 1e9), int((end + 5) * 1e9))
                  if s.metric == "power_w"]
    finally:
        store.close()
    measured = sum(integrated_energy(s, start, end, 900.0).kwh for s in series)
    true = site.truth(start, end)["servers"]
    err = (measured - true) / true * 100 if true else float("nan")
    console.print(
        f"Servers at point 8 ({len(series)} BMCs, DCMI power integrated): {measured:.5f} kWh "
        f"vs true {true:.5f} kWh: error {err:+.3f} %"
    )


def _progress(
    console: Console, http: httpx.Client, url: str, seconds: float,
    procs: list[subprocess.Popen[bytes]],
) -> None:
    """Show the open window filling up, with its PUE as it stands."""
    columns = (TextColumn("{task.description}"), BarColumn(), TimeRemainingColumn(),
               TextColumn("{task.fields[status]}"))
    with Progress(*columns, console=console, transient=not console.is_terminal) as bar:
        task = bar.add_task("window open", total=seconds, status="")
        t0 = time.monotonic()
        while (elapsed := time.monotonic() - t0) < seconds:
            if any(p.poll() is not None for p in procs):
                raise RuntimeError("a daemon exited during the window")
            status = ""
            try:
                r = http.get(url).json()
                if r.get("pue"):
                    status = f"PUE so far {r['pue']:.4f}"
            except (httpx.HTTPError, ValueError):
                pass
            bar.update(task, completed=elapsed, status=status)
            time.sleep(1.0)
        bar.update(task, completed=seconds)
    if not console.is_terminal:
        console.print(f"window ran {seconds:g} s")


if __name__ == "__main__":  # pragma: no cover
    sys.exit(run_demo(float(os.environ.get("DEMO_SECONDS", "30"))))
