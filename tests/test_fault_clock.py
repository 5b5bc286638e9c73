"""The wall clock stepped back and forward under a running agent (libfaketime).

A real `dcmeter agent run` process polls a simulated meter and ships to a real collector;
its wall clock (not its monotonic clock) is moved through libfaketime's timestamp file. Each
series stays ordered in time inside and across batches, the steps are flagged in the batch
that follows them and in the window's quality.clock, and the counter's energy is the
meter's true increase: the overlap a backward step makes is never counted twice.
"""

from __future__ import annotations

import itertools
import json
import math
import os
import signal
import subprocess
import sys
import threading
import time
from collections import defaultdict
from pathlib import Path

import msgpack
import pytest
from conftest import ROOT, Collector, MeterThread
from cryptography.hazmat.primitives import serialization

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketime.so.1")
STEP_KWH = 0.25  # the meter's energy grows in steps float32 holds exactly
RATE_KWH_S = 1.0  # true energy growth, kWh per (real) second


class Meter:
    """A meter whose energy follows real (monotonic) time, whatever the agent's clock says."""

    def __init__(self) -> None:
        self.t0 = time.monotonic()
        self.lock = threading.Lock()

    def energy(self) -> float:
        """kWh now: 100 + RATE_KWH_S per second, in whole STEP_KWH."""
        steps = math.floor((time.monotonic() - self.t0) * RATE_KWH_S / STEP_KWH)
        return 100.0 + steps * STEP_KWH

    def values(self) -> dict[str, float]:
        """What the simulated meter serves."""
        return {"power_w": 3.6e6, "energy_import_kwh": self.energy(),
                "energy_export_kwh": 0.0, "frequency_hz": 50.0}


@pytest.mark.skipif(not LIBFAKETIME.exists(), reason="needs Debian's faketime package")
def test_clock_steps_keep_series_ordered_flagged_and_counted_once(
    tmp_path: Path, collector: Collector, meters: MeterThread
) -> None:
    meter = Meter()
    port = meters.add("eastron_sdm630", meter.values)
    state = tmp_path / "state"
    state.mkdir()
    (state / "agent.key").write_bytes(collector.keys["agent-1"].private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption()))
    cfg = tmp_path / "agent.toml"
    cfg.write_text(
        f'[agent]\nid = "agent-1"\ninterval_s = 1\nstate_dir = "{state}"\n'
        f'[collector]\nurl = "{collector.url}"\n'
        f'[[sources]]\nid = "meter-total"\ntype = "modbus"\nhost = "127.0.0.1"\n'
        f'port = {port}\nprofile = "eastron_sdm630"\nlabels = {{ point = "total" }}\n'
    )
    offset = tmp_path / "faketime"
    offset.write_text("+0\n")
    env = {
        **os.environ, "PYTHONPATH": str(ROOT), "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(offset), "FAKETIME_NO_CACHE": "1",
        # Only the wall clock steps: the agent tells a step by its monotonic clock.
        "FAKETIME_DONT_FAKE_MONOTONIC": "1",
    }
    proc = subprocess.Popen([sys.executable, "-m", "dcmeter", "agent", "run", "-c", str(cfg)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    try:
        time.sleep(5.5)
        offset.write_text("-600\n")  # back 10 minutes: the agent's last minutes come again
        time.sleep(3.0)
        offset.write_text("+1200\n")  # forward 30 minutes from there
        time.sleep(3.0)
        offset.write_text("+1197\n")  # back 3 s: a short overlap, held back and flagged
        time.sleep(5.0)
    finally:
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    events = [json.loads(line) for line in out.splitlines()]
    logged = [e["stepped_s"] for e in events if e["event"] == "wall clock stepped"]
    assert [round(s) for s in logged] == [-600, 1800, -3], logged

    # Let the shipper's last batches land, then read every batch back as stored.
    batches = []
    for _, seq, _, raw in collector.store.raw_batches("agent-1"):
        batches.append((seq, wire.decode_body(wire.open_envelope(raw)[0])))
    assert [s for s, _ in batches] == list(range(1, len(batches) + 1))

    # Ordered: each series moves forward in time, inside every batch and across batches.
    last: dict[tuple[int, int], int] = {}
    series: dict[str, list[tuple[int, float]]] = defaultdict(list)
    for _, b in batches:
        for ts, s, m, v in zip(b.ts, b.src, b.met, b.val, strict=True):
            name = b.metrics[m].spec.name
            key = (hash(b.sources[s].id), hash(name))
            assert ts > last.get(key, 0), f"{name} went back in time"
            last[key] = ts
            series[name].append((ts, v))

    # Flagged: the batch after the two steps carries their net (-600 + 1800 s: the samples
    # of the backward overlap were held back, so no batch was sealed between them), and the
    # short backward step its own; each widens the batch's clock error bound.
    flagged = [(seq, b.clock) for seq, b in batches if b.clock.stepped_s is not None]
    assert [round(c.stepped_s or 0) for _, c in flagged] == [1200, -3], flagged
    assert all((c.max_error_s or 0) >= abs(c.stepped_s or 0) for _, c in flagged)
    assert all(b.clock.stepped_s is None for seq, b in batches if seq not in dict(flagged))

    # The collector's window over the whole run reports the steps in quality.clock.
    energy = series["energy_import_kwh"]
    assert len(energy) >= 8
    first_ts, last_ts = energy[0][0], energy[-1][0]
    w = collector.store.open_window("infrastructure", first_ts, "clock steps", first_ts)
    assert collector.store.close_window(w.id, last_ts)
    with collector.http("reader") as http:
        result = http.get(f"{collector.url}/api/v1/windows/{w.id}").json()
    clock = result["quality"]["clock"]
    assert not clock["ok"]
    steps = clock["agents"]["agent-1"]["steps"]
    assert [(s["seq"], round(s["stepped_s"])) for s in steps] == [
        (seq, round(c.stepped_s or 0)) for seq, c in flagged]
    assert any("wall clock stepped" in i for i in result["quality"]["issues"])

    # Counted once: the window's energy is the meter's increase between the first and the
    # last reading, no reset seen; and that increase matches the real time the meter ran
    # (some 12 s, not the 20 minutes the agent's timestamps span).
    total = result["energy_kwh"]["total"]
    increase = energy[-1][1] - energy[0][1]
    assert total == pytest.approx(increase, rel=1e-6), result["energy_kwh"]
    assert all(b >= a for (_, a), (_, b) in itertools.pairwise(energy))
    assert (last_ts - first_ts) / 1e9 > 1000
    assert 8 * RATE_KWH_S <= increase <= 17 * RATE_KWH_S


def test_stepped_s_is_optional_on_the_wire() -> None:
    arrays = wire.pack_arrays([1], [0], [0], [1.0])
    src = wire.SourceInfo("m", "modbus", "x")
    met = wire.MetricEntry(MetricSpec("power_w", "W"))
    old = wire.Batch("a", 1, wire.GENESIS, 2, wire.ClockStatus(True, 0.01), [src], [met],
                     *arrays)
    body = wire.encode_body(old)
    # An agent that saw no step sends the clock map of earlier releases, which decodes.

    assert msgpack.unpackb(body)["clock"] == {"synced": True, "max_error_s": 0.01}
    assert wire.decode_body(body).clock == wire.ClockStatus(True, 0.01, None)
    old.clock = wire.ClockStatus(False, 600.0, -600.0)
    assert wire.decode_body(wire.encode_body(old)).clock.stepped_s == -600.0
