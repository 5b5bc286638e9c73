"""Configs and runners for the anchors of bench/poll_cycle.py: Debian's exporters and collectd.

Each anchor reads the same simulated targets as the agent: `prometheus-ipmi-exporter`
(FreeIPMI's `ipmi-dcmi` per target, DCMI collector), `prometheus-snmp-exporter` (a
hand-written snmp.yml module: IF-MIB HC octets, ifHighSpeed, ifAlias, sysUpTime) and collectd
(`modbus` plugin for the meters, `snmp` plugin for the switches, CSV output). Exporters are
scraped the way a Prometheus server would: every target at once, at most `concurrency` in
flight, and the whole sweep timed.

The scraping client must not be what is measured: it shares the cores with the exporter.
An asyncio httpx client burned more CPU per sweep than the exporters it scraped (5.8-6.6 s
per 600-BMC sweep, issue 20), so the client is `concurrency` threads of http.client, each
keeping its own connection, as light as Python allows; its own CPU per sweep is measured
and reported beside the sweep (`client_cpu_s_mean`), and so are the exporters' own scrape
durations as they report them (`*_scrape_duration_seconds`).
"""

from __future__ import annotations

import http.client
import re
import statistics
import subprocess
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import psutil
from bench_site import COMMUNITY, PASSWORD, free_port

IF_HC_IN, IF_HC_OUT = "1.3.6.1.2.1.31.1.1.1.6", "1.3.6.1.2.1.31.1.1.1.10"
IF_HIGH_SPEED, IF_ALIAS = "1.3.6.1.2.1.31.1.1.1.15", "1.3.6.1.2.1.31.1.1.1.18"
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
SYS_UPTIME = "1.3.6.1.2.1.1.3"


def ipmi_exporter_yml() -> str:
    """One module: the simulated BMCs' user, lanplus, the DCMI collector only."""
    return f"""modules:
  default:
    collectors: []
  bench:
    user: "admin"
    pass: "{PASSWORD}"
    driver: "LAN_2_0"
    privilege: "user"
    timeout: 10000
    collectors:
    - dcmi
"""


def snmp_exporter_yml() -> str:
    """snmp_exporter 0.21 format (auth inside the module), written by hand, no generator."""
    def metric(name: str, oid: str, kind: str) -> str:
        return (f"  - name: {name}\n    oid: {oid}\n    type: {kind}\n    indexes:\n"
                "    - labelname: ifIndex\n      type: gauge\n    lookups:\n"
                "    - labels: [ifIndex]\n      labelname: ifAlias\n"
                f"      oid: {IF_ALIAS}\n      type: DisplayString\n")

    return (
        "if_hc:\n  version: 2\n  auth:\n"
        f"    community: {COMMUNITY}\n"
        f"  walk:\n  - {IF_HC_IN}\n  - {IF_HC_OUT}\n  - {IF_HIGH_SPEED}\n  - {IF_ALIAS}\n"
        f"  get:\n  - {SYS_UPTIME}.0\n"
        "  metrics:\n"
        f"  - name: sysUpTime\n    oid: {SYS_UPTIME}\n    type: gauge\n"
        + metric("ifHCInOctets", IF_HC_IN, "counter")
        + metric("ifHCOutOctets", IF_HC_OUT, "counter")
        + metric("ifHighSpeed", IF_HIGH_SPEED, "gauge")
    )


def collectd_conf(
    data_dir: Path, meters: list[dict[str, Any]], switches: list[dict[str, Any]],
    interval_s: float, read_threads: int,
) -> str:
    """collectd: modbus (SDM630 power and import kWh) and snmp (IF-MIB HC octets), CSV out."""
    out = [
        f"Interval {interval_s:g}", f"ReadThreads {read_threads}", "FQDNLookup false",
        "LoadPlugin csv", "LoadPlugin modbus", "LoadPlugin snmp",
        f'<Plugin csv>\n  DataDir "{data_dir}"\n  StoreRates false\n</Plugin>',
        "<Plugin modbus>",
        '  <Data "power">\n    RegisterBase 52\n    RegisterType float\n'
        '    RegisterCmd ReadInput\n    Type power\n    Instance "total"\n  </Data>',
        '  <Data "energy">\n    RegisterBase 72\n    RegisterType float\n'
        '    RegisterCmd ReadInput\n    Type gauge\n    Instance "import_kwh"\n  </Data>',
        # The IT meter is a Schneider PM5100: kW float32 at 3059, Wh int64 at 3203 (holding).
        '  <Data "pm5100-power">\n    RegisterBase 3059\n    RegisterType float\n'
        '    RegisterCmd ReadHolding\n    Type power\n    Instance "total"\n'
        '    Scale 1000.0\n  </Data>',
        '  <Data "pm5100-energy">\n    RegisterBase 3203\n    RegisterType Int64\n'
        '    RegisterCmd ReadHolding\n    Type gauge\n    Instance "import_kwh"\n'
        '    Scale 0.001\n  </Data>',
    ]
    for m in meters:
        kind = "pm5100-" if m.get("role") == "it" else ""
        out.append(f'  <Host "{m["name"]}">\n    Address "127.0.0.1"\n    Port "{m["port"]}"\n'
                   f'    <Slave 1>\n      Collect "{kind}power"\n      Collect "{kind}energy"\n'
                   "    </Slave>\n  </Host>")
    out += [
        "</Plugin>", "<Plugin snmp>",
        '  <Data "if_octets">\n    Type "if_octets"\n    Table true\n'
        f'    TypeInstanceOID "{IF_NAME}"\n'
        f'    Values "{IF_HC_IN}" "{IF_HC_OUT}"\n  </Data>',
    ]
    for s in switches:
        out.append(f'  <Host "{s["name"]}">\n    Address "127.0.0.1:{s["port"]}"\n'
                   f'    Version 2\n    Community "{COMMUNITY}"\n    Collect "if_octets"\n'
                   "  </Host>")
    out.append("</Plugin>")
    return "\n".join(out) + "\n"


def cpu_s(p: psutil.Process) -> float:
    """CPU seconds of `p`, its threads and the children it has waited for."""
    t = p.cpu_times()
    return float(t.user + t.system + t.children_user + t.children_system)


class RssSampler:
    """Samples a process's RSS every 50 ms in a thread; `max_mb` is the peak seen."""

    def __init__(self, proc: psutil.Process) -> None:
        self.proc = proc
        self.max_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.max_mb = max(self.max_mb, self.proc.memory_info().rss / 2**20)
            except psutil.Error:
                return
            self._stop.wait(0.05)

    def stop(self) -> float:
        """Stop sampling; the peak RSS in MB."""
        self._stop.set()
        self._thread.join()
        return self.max_mb


@dataclass
class Sweep:
    """One sweep over every target: wall, CPU of the tool and of the client, answers."""

    wall_s: float
    cpu_s: float
    ok: int
    failed: list[str] = field(default_factory=list)
    client_cpu_s: float = 0.0
    reported_s: list[float] = field(default_factory=list)  # the exporter's own durations


# The exporters' own time per scrape, in every answer: snmp_scrape_duration_seconds,
# ipmi_scrape_duration_seconds{collector="dcmi"}.
SCRAPE_DURATION = re.compile(r"^(?:snmp|ipmi)_scrape_duration_seconds(?:\{[^}]*\})? (\S+)$",
                             re.MULTILINE)


class Scraper:
    """`concurrency` threads of http.client, each with a kept-alive connection of its own."""

    def __init__(self, concurrency: int) -> None:
        self.pool = ThreadPoolExecutor(max_workers=concurrency)
        self._local = threading.local()

    def _get(self, url: str) -> tuple[int, str]:
        parts = urlsplit(url)
        path = parts.path + (f"?{parts.query}" if parts.query else "")
        for attempt in (0, 1):  # a kept-alive connection the server closed: one new one
            conn = getattr(self._local, "conn", None)
            if conn is None:
                conn = http.client.HTTPConnection(parts.netloc, timeout=30.0)
                self._local.conn = conn
            try:
                conn.request("GET", path)
                r = conn.getresponse()
                return r.status, r.read().decode()
            except (OSError, http.client.HTTPException):
                conn.close()
                self._local.conn = None
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def one(self, url: str, expect: str) -> tuple[str | None, float | None]:
        """Scrape one target: (failure or None, the exporter's reported duration in s)."""
        try:
            status, text = self._get(url)
        except (OSError, http.client.HTTPException) as exc:
            return f"{url}: {type(exc).__name__}", None
        m = SCRAPE_DURATION.search(text)
        reported = float(m.group(1)) if m else None
        if status != 200 or expect not in text:
            return f"{url}: HTTP {status}, {expect!r} missing", reported
        return None, reported

    def sweep(self, urls: list[str], expect: str) -> tuple[int, list[str], list[float]]:
        """Every target once, `concurrency` in flight; (ok, failures, reported durations)."""
        results = list(self.pool.map(lambda u: self.one(u, expect), urls))
        failed = [f for f, _ in results if f]
        return len(urls) - len(failed), failed, [d for _, d in results if d is not None]

    def close(self) -> None:
        """Stop the threads."""
        self.pool.shutdown()


def run_exporter(
    argv: list[str], port: int, urls: list[str], expect: str, sweeps: int, concurrency: int,
) -> dict[str, Any]:
    """Start an exporter, scrape every target `sweeps` + 1 times (the first reported apart)."""
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    scraper = Scraper(concurrency)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                httpx.get(f"http://127.0.0.1:{port}/metrics", timeout=1.0)
                break
            except httpx.HTTPError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    err = proc.stderr.read().decode() if proc.stderr else ""
                    raise SystemExit(f"{argv[0]} did not start: {err[-500:]}") from None
                time.sleep(0.1)
        ps = psutil.Process(proc.pid)
        rss = RssSampler(ps)
        runs: list[Sweep] = []
        for _ in range(sweeps + 1):
            # The client's CPU: this process's, all threads (only the scrapes run meanwhile;
            # the RSS sampler's 50 ms polls are in it too, a few ms per sweep).
            c0, k0, t0 = cpu_s(ps), time.process_time(), time.monotonic()
            ok, failed, reported = scraper.sweep(urls, expect)
            runs.append(Sweep(time.monotonic() - t0, cpu_s(ps) - c0, ok, failed,
                              time.process_time() - k0, reported))
        rss_mb = rss.stop()
    finally:
        scraper.close()
        proc.terminate()
        proc.wait(10)
    return summarise(runs, rss_mb, len(urls))


def summarise(runs: list[Sweep], rss_mb: float, targets: int) -> dict[str, Any]:
    """First sweep apart; mean and max of the others; failures of every sweep counted."""
    first, rest = runs[0], runs[1:]
    reported = [d for r in rest for d in r.reported_s]
    return {
        "targets": targets,
        "ok_min": min(r.ok for r in rest),
        "failed_reads_all_sweeps": sum(targets - r.ok for r in runs),
        "first": {"wall_s": round(first.wall_s, 3), "cpu_s": round(first.cpu_s, 3),
                  "failed": targets - first.ok, "client_cpu_s": round(first.client_cpu_s, 3)},
        "wall_s_mean": round(sum(r.wall_s for r in rest) / len(rest), 3),
        "wall_s_max": round(max(r.wall_s for r in rest), 3),
        "cpu_s_mean": round(sum(r.cpu_s for r in rest) / len(rest), 3),
        "client_cpu_s_mean": round(sum(r.client_cpu_s for r in rest) / len(rest), 3),
        "reported_scrape_s_median": round(statistics.median(reported), 4) if reported else None,
        "reported_scrape_s_max": round(max(reported), 4) if reported else None,
        "rss_mb_max": round(rss_mb, 1),
        "cycles": [{"wall_s": round(r.wall_s, 3), "cpu_s": round(r.cpu_s, 3), "ok": r.ok,
                    "client_cpu_s": round(r.client_cpu_s, 3)} for r in rest],
        "failed_examples": sorted({f for r in runs for f in r.failed})[:5],
    }


def ipmi_exporter(bmcs: list[dict[str, Any]], work: Path, sweeps: int, conc: int) -> dict[str, Any]:
    """prometheus-ipmi-exporter, module `bench`, every BMC as target=127.0.0.1:PORT."""
    cfg = work / "ipmi_exporter.yml"
    cfg.write_text(ipmi_exporter_yml())
    port = free_port()
    argv = ["prometheus-ipmi-exporter", f"--config.file={cfg}",
            f"--web.listen-address=127.0.0.1:{port}"]
    urls = [f"http://127.0.0.1:{port}/ipmi?module=bench&target=127.0.0.1:{b['port']}"
            for b in bmcs]
    return run_exporter(argv, port, urls, "ipmi_dcmi_power_consumption_watts", sweeps, conc)


def snmp_exporter(switches: list[dict[str, Any]], work: Path, sweeps: int,
                  conc: int) -> dict[str, Any]:
    """prometheus-snmp-exporter, module `if_hc`, every switch as target=127.0.0.1:PORT."""
    cfg = work / "snmp.yml"
    cfg.write_text(snmp_exporter_yml())
    port = free_port()
    argv = ["prometheus-snmp-exporter", f"--config.file={cfg}",
            f"--web.listen-address=127.0.0.1:{port}"]
    urls = [f"http://127.0.0.1:{port}/snmp?module=if_hc&target=127.0.0.1:{s['port']}"
            for s in switches]
    return run_exporter(argv, port, urls, "ifHCInOctets{", sweeps, conc)


def collectd(
    meters: list[dict[str, Any]], switches: list[dict[str, Any]], work: Path, cycles: int,
    interval_s: float, read_threads: int,
) -> dict[str, Any]:
    """collectd: one sweep timed in test mode (-T), then the daemon's CPU over `cycles`."""
    data = work / "collectd-csv"
    conf = work / "collectd.conf"
    conf.write_text(collectd_conf(data, meters, switches, interval_s, read_threads))
    env = {"MIBS": "", "PATH": "/usr/sbin:/usr/bin:/bin"}
    before, t0 = psutil.Process().cpu_times(), time.monotonic()
    test = subprocess.run(["collectd", "-C", str(conf), "-T"], env=env, capture_output=True)
    once_wall = time.monotonic() - t0
    # -T exits non-zero when any read failed; which hosts delivered is counted below.
    test_failures = test.stderr.decode().count("read-function of plugin")
    after = psutil.Process().cpu_times()
    once_cpu = (after.children_user - before.children_user
                + after.children_system - before.children_system)
    # The daemon, in the foreground: CPU over whole intervals after the first.
    proc = subprocess.Popen(["collectd", "-C", str(conf), "-f"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    ps = psutil.Process(proc.pid)
    rss = RssSampler(ps)
    try:
        time.sleep(interval_s * 1.5)
        c0, t0 = cpu_s(ps), time.monotonic()
        time.sleep(interval_s * cycles)
        cpu, wall = cpu_s(ps) - c0, time.monotonic() - t0
        rss_mb = rss.stop()
    finally:
        proc.terminate()
        proc.wait(10)
    hosts_with_data = {
        p.name for p in data.iterdir() if any(f.stat().st_size for f in p.rglob("*") if f.is_file())
    } if data.exists() else set()
    names = {m["name"] for m in meters} | {s["name"] for s in switches}
    examples = {}  # one CSV line per kind: the values arrived and make sense
    for host in (meters[-1]["name"], switches[0]["name"] if switches else ""):
        files = sorted((data / host).rglob("*")) if host and (data / host).exists() else []
        for f in [f for f in files if f.is_file()][:2]:
            examples[str(f.relative_to(data))] = f.read_text().splitlines()[-1]
    return {
        "targets": len(names),
        "ok_min": len(hosts_with_data & names),
        "meters_ok": len(hosts_with_data & {m["name"] for m in meters}),
        "switches_ok": len(hosts_with_data & {s["name"] for s in switches}),
        "test_mode_wall_s": round(once_wall, 3),
        "test_mode_cpu_s": round(once_cpu, 3),
        "test_mode_failed_reads": test_failures,
        "interval_s": interval_s,
        "read_threads": read_threads,
        "cpu_s_per_interval": round(cpu / (wall / interval_s), 3),
        "rss_mb_max": round(rss_mb, 1),
        "csv_examples": examples,
    }
