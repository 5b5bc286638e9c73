"""IF-MIB and HOST-RESOURCES-MIB for the `snmp` source: numeric OIDs and pure functions.

No pysnmp here. Values arrive as plain Python: int, str, or None where the agent answered
noSuchObject, noSuchInstance or endOfMibView. Port selection, the choice between 64-bit and
32-bit counters and the line rate are decided here, so they can be tested without a device.
MIBs are not loaded anywhere (IF-MIB is not bundled with pysnmp): every OID is numeric.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

# SNMPv2-MIB sysUpTime.0: TimeTicks (1/100 s) since the agent (re)started; wraps at 2**32.
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_DESCR = "1.3.6.1.2.1.1.1.0"  # SNMPv2-MIB sysDescr: the device's own description
SYS_OBJECT_ID = "1.3.6.1.2.1.1.2.0"  # SNMPv2-MIB sysObjectID: its vendor's model OID
# IF-MIB ifTable (RFC 2863).
IF_DESCR = "1.3.6.1.2.1.2.2.1.2"
IF_SPEED = "1.3.6.1.2.1.2.2.1.5"  # Gauge32, bit/s; 2**32-1 means "faster, see ifHighSpeed"
IF_IN_OCTETS = "1.3.6.1.2.1.2.2.1.10"  # Counter32
IF_OUT_OCTETS = "1.3.6.1.2.1.2.2.1.16"  # Counter32
# IF-MIB ifXTable.
IF_NAME = "1.3.6.1.2.1.31.1.1.1.1"
IF_HC_IN_OCTETS = "1.3.6.1.2.1.31.1.1.1.6"  # Counter64
IF_HC_OUT_OCTETS = "1.3.6.1.2.1.31.1.1.1.10"  # Counter64
IF_HIGH_SPEED = "1.3.6.1.2.1.31.1.1.1.15"  # Gauge32, Mbit/s
IF_ALIAS = "1.3.6.1.2.1.31.1.1.1.18"
# TimeTicks: sysUpTime when this port's counters last had a discontinuity (0: none since
# the agent started). A change tells a counter reset from a wrap.
IF_COUNTER_DISCONTINUITY_TIME = "1.3.6.1.2.1.31.1.1.1.19"
# HOST-RESOURCES-MIB hrProcessorLoad: Integer32, % busy over the last minute, per processor.
HR_PROCESSOR_LOAD = "1.3.6.1.2.1.25.3.3.1.2"

COUNTER64_MODULUS = 2**64
COUNTER32_MODULUS = 2**32
IF_SPEED_SATURATED = 2**32 - 1
TICKS_PER_S = 100

Value = int | str | None


@dataclass(frozen=True, slots=True)
class Port:
    """One row of the interface table: ifIndex with its ifName, ifDescr and ifAlias."""

    index: int
    if_name: str = ""
    descr: str = ""
    alias: str = ""

    @property
    def name(self) -> str:
        """The name readings carry: ifName, else ifDescr, else `ifINDEX`."""
        return self.if_name or self.descr or f"if{self.index}"


def build_ports(
    names: Mapping[int, Value], descrs: Mapping[int, Value], aliases: Mapping[int, Value]
) -> dict[int, Port]:
    """Join the walked ifName, ifDescr and ifAlias columns into ports keyed by ifIndex."""

    def text(column: Mapping[int, Value], index: int) -> str:
        value = column.get(index)
        return value if isinstance(value, str) else ""

    indexes = sorted(set(names) | set(descrs))
    return {i: Port(i, text(names, i), text(descrs, i), text(aliases, i)) for i in indexes}


def select_ports(
    ports: Mapping[int, Port],
    if_names: Iterable[str] = (),
    alias_pattern: str | re.Pattern[str] | None = None,
    if_indexes: Iterable[int] = (),
) -> tuple[list[Port], list[str]]:
    """Ports chosen by any of the selectors, in ifIndex order, and the selectors that found none.

    A name matches ifName exactly; where no port has that ifName it matches ifDescr (devices
    without ifXTable, or with empty ifName). The alias pattern is a regular expression
    searched in ifAlias. An index must be a row of the table.
    """
    chosen: set[int] = set()
    missing: list[str] = []
    for wanted in if_names:
        hits = [p.index for p in ports.values() if p.if_name == wanted]
        hits = hits or [p.index for p in ports.values() if p.descr == wanted]
        if hits:
            chosen.update(hits)
        else:
            missing.append(f"if_name {wanted!r}")
    if alias_pattern is not None:
        pattern = re.compile(alias_pattern) if isinstance(alias_pattern, str) else alias_pattern
        hits = [p.index for p in ports.values() if pattern.search(p.alias)]
        if hits:
            chosen.update(hits)
        else:
            missing.append(f"if_alias_pattern {pattern.pattern!r}")
    for index in if_indexes:
        if index in ports:
            chosen.add(index)
        else:
            missing.append(f"if_index {index}")
    return [ports[i] for i in sorted(chosen)], missing


def describe_names(ports: Mapping[int, Port], limit: int = 20) -> str:
    """The first `limit` port names with their ifIndex, for an error message."""
    shown = [f"{p.name} ({p.index})" for p in list(ports.values())[:limit]]
    if not shown:
        return "none"
    more = len(ports) - len(shown)
    return ", ".join(shown) + (f" and {more} more" if more > 0 else "")


def port_oids(index: int, wide: bool) -> tuple[str, ...]:
    """The OIDs read for one port each time: octet counters, both speeds, discontinuity time.

    `wide` asks for the 64-bit ifHC counters, else the 32-bit ifTable ones.
    """
    counters = (IF_HC_IN_OCTETS, IF_HC_OUT_OCTETS) if wide else (IF_IN_OCTETS, IF_OUT_OCTETS)
    columns = (*counters, IF_HIGH_SPEED, IF_SPEED, IF_COUNTER_DISCONTINUITY_TIME)
    return tuple(f"{c}.{index}" for c in columns)


def fallback_oids(index: int) -> tuple[str, ...]:
    """The 32-bit octet counters of one port, asked for when it has no ifHC counters."""
    return (f"{IF_IN_OCTETS}.{index}", f"{IF_OUT_OCTETS}.{index}")


def has_wide_counters(values: Mapping[str, Value], index: int) -> bool:
    """Whether the agent answered both ifHCInOctets and ifHCOutOctets of this port."""
    return all(
        isinstance(values.get(f"{c}.{index}"), int) for c in (IF_HC_IN_OCTETS, IF_HC_OUT_OCTETS)
    )


def merge_counters(values: Mapping[str, Value], index: int) -> tuple[int, int, int] | None:
    """(in octets, out octets, modulus) of one port: 64-bit where answered, else 32-bit.

    None when neither pair is complete (the row is gone, or the view hides it).
    """
    for c_in, c_out, modulus in (
        (IF_HC_IN_OCTETS, IF_HC_OUT_OCTETS, COUNTER64_MODULUS),
        (IF_IN_OCTETS, IF_OUT_OCTETS, COUNTER32_MODULUS),
    ):
        v_in, v_out = values.get(f"{c_in}.{index}"), values.get(f"{c_out}.{index}")
        if isinstance(v_in, int) and isinstance(v_out, int):
            return v_in, v_out, modulus
    return None


def line_rate_bps(high_speed_mbps: Value, speed_bps: Value) -> float | None:
    """The port's line rate in bit/s: ifHighSpeed x 1e6, else ifSpeed; None when unknown.

    0 means unknown in both objects; a saturated ifSpeed (2**32-1) without ifHighSpeed
    only says "faster than 4.29 Gbit/s", so that is unknown too.
    """
    if isinstance(high_speed_mbps, int) and high_speed_mbps > 0:
        return high_speed_mbps * 1e6
    if isinstance(speed_bps, int) and 0 < speed_bps < IF_SPEED_SATURATED:
        return float(speed_bps)
    return None


def mean_processor_load(loads: Mapping[int, Value]) -> float:
    """Mean hrProcessorLoad (%) over the processors that answered.

    Raises ValueError naming the processor when a load is outside 0..100 (the device is
    reporting nonsense), or when no processor answered.
    """
    answered = {i: v for i, v in loads.items() if isinstance(v, int)}
    if not answered:
        raise ValueError("no processor answered hrProcessorLoad")
    for index, value in sorted(answered.items()):
        if not 0 <= value <= 100:
            raise ValueError(f"hrProcessorLoad.{index} = {value} is outside 0..100")
    return sum(answered.values()) / len(answered)


def oid_tuple(oid: str) -> tuple[int, ...]:
    """'1.3.6.1' -> (1, 3, 6, 1), for ordering OIDs as the agent does."""
    return tuple(int(part) for part in oid.strip(".").split("."))
