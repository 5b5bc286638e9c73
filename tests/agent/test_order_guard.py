"""agent/clock.py's OrderGuard: a series is (source, metric, labels by value), whatever the
labels' order or the mapping that carries them; a reading not after its series' last is
held back. Worked by hand: each case says which readings pass."""

from __future__ import annotations

from collections.abc import Iterator

from dcmeter.agent.clock import OrderGuard
from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo

IN = MetricSpec("if_in_octets", "B", "counter", 2.0**64)
SW = SourceInfo("sw1", "snmp", "127.0.0.1:161")
SW2 = SourceInfo("sw2", "snmp", "127.0.0.2:161")


def test_same_labels_in_another_mapping_or_order_are_one_series() -> None:
    guard = OrderGuard()
    port1 = {"if_index": "1", "if_name": "Eth1/1"}
    first = [(SW, Reading(IN, 1.0, 100, port1)), (SW, Reading(IN, 2.0, 100, {"if_index": "2"}))]
    assert guard.keep(first) == first
    # Tick 2: port 1's labels in a new mapping, keys the other way round, stamped at 100
    # again (a backward step): held. Port 2 moves on to 200: kept. sw2's port 1 is new.
    again = {"if_name": "Eth1/1", "if_index": "1"}
    tick = [(SW, Reading(IN, 3.0, 100, again)), (SW, Reading(IN, 4.0, 200, {"if_index": "2"})),
            (SW2, Reading(IN, 5.0, 50, again))]
    assert guard.keep(tick) == tick[1:]
    assert guard.held == 1


def test_one_mapping_for_several_series_and_readings_from_a_generator() -> None:
    guard = OrderGuard()

    def readings(ts: int) -> Iterator[tuple[SourceInfo, Reading]]:
        # A fresh mapping per port, dropped as soon as the guard moves on: an id() reused
        # by the next port's mapping must not make it the same series.
        for port in range(50):
            yield SW, Reading(IN, float(port), ts, {"if_index": str(port)})

    assert len(guard.keep(readings(100))) == 50
    assert len(guard.keep(readings(100))) == 0  # all 50 series already at 100
    assert guard.held == 50
    assert len(guard.keep(readings(101))) == 50
    # Without labels: one series per (source, metric).
    bare = [(SW, Reading(IN, 1.0, 7)), (SW, Reading(IN, 1.0, 7))]
    assert guard.keep(bare) == bare[:1]
