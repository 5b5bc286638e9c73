"""The buffer's ids found by identity (agent/buffer_keys.py) name the same sources and metrics
the readings carried, through a replaced SourceInfo, fresh label maps and a rolled-back tick."""

from __future__ import annotations

import dataclasses
import sqlite3
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from dcmeter.agent import wire
from dcmeter.agent.buffer import Buffer, envelope_body
from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo
from dcmeter.agent.wire import ClockStatus

KEY = Ed25519PrivateKey.generate()
IN = MetricSpec("if_in_octets", "B", "counter", 2.0**64)
POWER = MetricSpec("power_w", "W")


def seal_one(buf: Buffer) -> wire.Batch:
    seq = buf.seal(lambda body: wire.envelope(body, KEY), ClockStatus(True, 0.0), 1)
    assert seq is not None
    raw = dict(buf.pending(limit=1000))[seq]
    return wire.decode_body(envelope_body(raw))


def samples(batch: wire.Batch) -> list[tuple[str, str, dict[str, str], float]]:
    """(source id, metric name, labels, value) of every sample, as the collector reads it."""
    return [
        (batch.sources[s].id, batch.metrics[m].spec.name, dict(batch.metrics[m].labels), v)
        for s, m, v in zip(batch.src, batch.met, batch.val, strict=True)
    ]


def test_a_replaced_source_info_and_fresh_labels_reach_the_batch(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.sqlite", "a")
    sw = SourceInfo("sw1", "snmp", "127.0.0.1:161", {"kind": "switch"})
    # Each tick makes new label maps, as the SNMP source does per port.
    buf.append([(sw, Reading(IN, 1.0, 1, {"if_index": "1"})),
                (sw, Reading(IN, 2.0, 1, {"if_index": "2"}))])
    first = seal_one(buf)
    assert [s.device for s in first.sources] == [{}]
    # The device's identity arrives: the source replaces its info (a new object).
    sw2 = dataclasses.replace(sw, device={"model": "X9"})
    buf.append([(sw2, Reading(IN, 3.0, 2, {"if_index": "1"})),
                (sw2, Reading(IN, 4.0, 2, {"if_index": "2"}))])
    # An equal MetricSpec made apart, and labels in another order: the same series.
    buf.append([(sw2, Reading(MetricSpec("if_in_octets", "B", "counter", 2.0**64), 5.0, 3,
                              {"if_index": "1"}))])
    second = seal_one(buf)
    assert [s.device for s in second.sources] == [{"model": "X9"}]
    assert samples(second) == [
        ("sw1", "if_in_octets", {"if_index": "1"}, 3.0),
        ("sw1", "if_in_octets", {"if_index": "2"}, 4.0),
        ("sw1", "if_in_octets", {"if_index": "1"}, 5.0),
    ]
    assert len(second.metrics) == 2


def test_ids_of_a_rolled_back_tick_are_not_reused_for_other_keys(tmp_path: Path) -> None:
    buf = Buffer(tmp_path / "b.sqlite", "a")
    m1 = SourceInfo("m1", "modbus", "127.0.0.1:502/1")
    m2 = SourceInfo("m2", "modbus", "127.0.0.1:502/2")
    # m1 and its metric are interned, then the tick fails (a NULL value) and rolls back.
    with pytest.raises(sqlite3.IntegrityError):
        buf.append([(m1, Reading(POWER, None, 1))])  # type: ignore[arg-type]
    # m2 now takes the ids m1 had; m1 comes back with new ones.
    buf.append([(m2, Reading(MetricSpec("energy_kwh", "kWh", "counter"), 7.0, 2))])
    buf.append([(m1, Reading(POWER, 8.0, 3))])
    batch = seal_one(buf)
    assert samples(batch) == [("m2", "energy_kwh", {}, 7.0), ("m1", "power_w", {}, 8.0)]


def test_a_reopened_buffer_reads_the_keys_the_old_one_wrote(tmp_path: Path) -> None:
    path = tmp_path / "b.sqlite"
    buf = Buffer(path, "a")
    m1 = SourceInfo("m1", "modbus", "127.0.0.1:502/1", {"point": "it"}, 0.005)
    buf.append([(m1, Reading(POWER, 1.0, 1))])
    buf.close()
    buf = Buffer(path, "a")  # unsealed samples of an earlier run, then new ones
    buf.append([(SourceInfo("m1", "modbus", "127.0.0.1:502/1", {"point": "it"}, 0.005),
                 Reading(POWER, 2.0, 2))])
    batch = seal_one(buf)
    assert samples(batch) == [("m1", "power_w", {}, 1.0), ("m1", "power_w", {}, 2.0)]
    assert len(batch.sources) == 1 and len(batch.metrics) == 1
