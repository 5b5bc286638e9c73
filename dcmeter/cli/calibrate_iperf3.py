"""iperf3 as the network reference (seed 004's network performance tester, Gbit/s).

One iperf3 server runs for the whole calibration (`iperf3 -s -B host -p port`) when `host`
is an address of this machine; for a remote host the operator starts it there. Each
repetition runs a client `iperf3 -c host -p port -b RATE -t DWELL -O SETTLE -J`: iperf3 3.x
runs the omitted (settling) seconds *before* the -t seconds and leaves them out of the sums,
and takes both as whole seconds. The reference is `end.sum_received.bits_per_second`: what the
receiver took off the link over the measured seconds; `sum_sent` also counts bytes still in the
sender's socket buffer when the test stops, which never crossed the port in the dwell.
"""

from __future__ import annotations

import contextlib
import json
import math
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from dcmeter.cli.calibrate_drivers import DriverError, Measured
from dcmeter.cli.calibrate_exec import find_tool, last_line, run_tool
from dcmeter.collectors.evaluation.calibration_plan import Plan, PlanPoint

LISTEN_DEADLINE_S = 15.0  # a busy machine starts iperf3 in well under a second; be generous
BUSY_DEADLINE_S = 15.0  # the server takes a moment to accept the next test after one ends


def is_local(host: str) -> bool:
    """Whether `host` is an address of this machine (a server can be bound to it here)."""
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except OSError:
        return False
    for family, kind, proto, _, address in infos:
        with contextlib.suppress(OSError), socket.socket(family, kind, proto) as s:
            s.bind((address[0], 0))
            return True
    return False


def whole_seconds(settle_s: float, dwell_s: float) -> tuple[int, int]:
    """(omit, time) for iperf3's -O and -t, which it reads as whole seconds: the settling
    rounded up (never shorter than asked), the dwell rounded, at least 1 s."""
    return math.ceil(settle_s - 1e-9), max(1, round(dwell_s))


class Iperf3Driver:
    """Runs one iperf3 client per repetition against a server it keeps running."""

    def __init__(self, plan: Plan) -> None:
        self._plan = plan
        self._iperf3 = find_tool("iperf3")
        self.host, self.port = plan.driver.host, plan.driver.port
        self.server: subprocess.Popen[bytes] | None = None
        self._log: Path | None = None

    def _start_server(self) -> None:
        """Start the server on host:port and wait until it listens."""
        fd, name = tempfile.mkstemp(prefix="dcmeter-iperf3-", suffix=".log")
        self._log = Path(name)
        with open(fd, "wb") as log:
            try:
                self.server = subprocess.Popen(
                    [self._iperf3, "-s", "-B", self.host, "-p", str(self.port), "--forceflush"],
                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
            except OSError as exc:
                raise DriverError(f"iperf3 server: cannot start: {exc.strerror or exc}") from None
        deadline = time.monotonic() + LISTEN_DEADLINE_S
        while True:
            text = self._log.read_text(errors="replace")
            if "Server listening" in text:
                return
            if self.server.poll() is not None or time.monotonic() > deadline:
                # iperf3 says why ("error - unable to start listener …"), then "exiting".
                errors = [x for x in text.splitlines() if "error" in x]
                why = (last_line(errors[-1] if errors else text)
                       if self.server.poll() is not None else "not listening")
                self.close()
                raise DriverError(f"iperf3 server on {self.host}:{self.port}: {why}")
            time.sleep(0.05)

    def _client(self, point: PlanPoint, omit: int, seconds: int) -> tuple[float, dict[str, Any]]:
        """Run one client; answer (its launch time, its JSON result)."""
        argv = [self._iperf3, "-c", self.host, "-p", str(self.port), "-b", str(point.rate),
                "-t", str(seconds), "-O", str(omit), "-J"]
        what = f"point {point.label!r}: iperf3 to {self.host}:{self.port}"
        deadline = time.monotonic() + BUSY_DEADLINE_S
        while True:
            launch = time.time()  # iperf3's own timestamp has a resolution of 1 s
            done = run_tool(argv, what, omit + seconds + 60)
            try:
                result = json.loads(done.stdout)
            except ValueError:
                raise DriverError(f"{what}: {last_line(done.stderr, done.stdout)}") from None
            error = result.get("error") if isinstance(result, dict) else "not a JSON object"
            if error and "busy" in str(error) and time.monotonic() < deadline:
                time.sleep(0.2)
                continue
            if error or done.returncode != 0:
                raise DriverError(f"{what}: {error or last_line(done.stderr, done.stdout)}")
            return launch, result

    def measure(self, point: PlanPoint, repetition: int) -> Measured:
        """Run the point's rate for settle + dwell; the received rate is the reference."""
        if self.server is None and is_local(self.host):
            self._start_server()
        cal = self._plan.calibration
        omit, seconds = whole_seconds(cal.settle_s, cal.dwell_s)
        launch, result = self._client(point, omit, seconds)
        try:
            received = result["end"]["sum_received"]
            bps, measured_s = float(received["bits_per_second"]), float(received["seconds"])
            sent = result["end"].get("sum_sent", {})
            start_info = result.get("start", {})
        except (KeyError, TypeError, ValueError) as exc:
            raise DriverError(f"point {point.label!r}: iperf3 wrote no end.sum_received"
                              f" ({exc})") from None
        # The measured seconds follow the omitted ones; the connection's set-up (a few ms on
        # a LAN) is not counted and goes to the synchronisation bound sync_s.
        start = launch + omit
        return Measured(
            start=start, end=start + measured_s, reference=bps / 1e9,
            detail={
                "tool": "iperf3", "version": start_info.get("version", ""),
                "target_rate": point.rate,
                "target_bits_per_second": start_info.get("test_start", {}).get("target_bitrate"),
                "bits_per_second": bps, "bytes": received.get("bytes"),
                "retransmits": sent.get("retransmits"), "omit_s": omit, "time_s": seconds,
                "seconds": measured_s,
            },
        )

    def close(self) -> None:
        """Stop the server this driver started and remove its log."""
        if self.server is not None and self.server.poll() is None:
            self.server.terminate()
            try:
                self.server.wait(10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
        if self._log is not None:
            self._log.unlink(missing_ok=True)
