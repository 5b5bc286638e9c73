"""`snmp` source: switch egress ports and storage CPU over SNMP v2c/v3 (pysnmp, lazily);
a metered PDU (role `pdu`) is read by snmp_pdu.py.

A switch yields, per selected port (labels `if_index`, `if_name`): `if_in_octets` and
`if_out_octets` (counters, modulus 2**64 from ifHC*, or 2**32 where the port has only the
ifTable counters), `if_speed_bps`, `if_speed_unknown` (1 when the line rate is unknown and
no override is configured, else 0) and `if_counter_discontinuity_s`; plus `sys_uptime_s`.
A storage system yields `cpu_util_pct`, the mean hrProcessorLoad over its processors.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable

import structlog

from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo, device_map, now_ns
from dcmeter.agent.sources import DeviceError
from dcmeter.agent.sources.snmp_client import SnmpClient, no_answer_hint
from dcmeter.agent.sources.snmp_config import SnmpSettings
from dcmeter.agent.sources.snmp_oids import (
    COUNTER32_MODULUS,
    COUNTER64_MODULUS,
    HR_PROCESSOR_LOAD,
    IF_ALIAS,
    IF_DESCR,
    IF_NAME,
    SYS_DESCR,
    SYS_OBJECT_ID,
    SYS_UPTIME,
    TICKS_PER_S,
    Port,
    Value,
    build_ports,
    describe_names,
    fallback_oids,
    has_wide_counters,
    line_rate_bps,
    mean_processor_load,
    merge_counters,
    port_oids,
    select_ports,
)
from dcmeter.agent.sources.snmp_pdu import PduSource

log = structlog.get_logger("dcmeter.agent.snmp")

# A port's OIDs, made once per (ifIndex, wide) rather than as 5 strings per port and read.
_port_oids = functools.lru_cache(maxsize=16384)(port_oids)

IN_64 = MetricSpec("if_in_octets", "B", "counter", float(COUNTER64_MODULUS))
OUT_64 = MetricSpec("if_out_octets", "B", "counter", float(COUNTER64_MODULUS))
IN_32 = MetricSpec("if_in_octets", "B", "counter", float(COUNTER32_MODULUS))
OUT_32 = MetricSpec("if_out_octets", "B", "counter", float(COUNTER32_MODULUS))
SPEED = MetricSpec("if_speed_bps", "bit/s")
SPEED_UNKNOWN = MetricSpec("if_speed_unknown", "1")
DISCONTINUITY = MetricSpec("if_counter_discontinuity_s", "s")
UPTIME = MetricSpec("sys_uptime_s", "s")
CPU_UTIL = MetricSpec("cpu_util_pct", "%")

class SnmpConfig(SnmpSettings):
    """A switch's or storage system's settings (snmp_config.py) and the source they make."""

    def build(self) -> SnmpSource | PduSource:
        """Make the source this config describes (a PDU's is snmp_pdu.py's)."""
        if self.role == "pdu":
            return PduSource(self)
        return SnmpSource(self)


class SnmpSource:
    """One SNMP agent: the selected ports of a switch and/or the processors of a storage system.

    The interface table (ifName, ifDescr, and ifAlias when a pattern is configured) is walked
    on the first read, again every `rewalk_every` reads, after sysUpTime went backwards (agent
    restart: ifIndex may be renumbered; that read is then taken again), and after a selected
    port stopped answering. Each read GETs sysUpTime and, per port, the 64-bit counters, both
    speeds and ifCounterDiscontinuityTime, in as few PDUs as `max_oids_per_request` allows
    (halved on tooBig). A port without 64-bit counters is read through the 32-bit ones from
    then on, and that is logged once per port.
    """

    def __init__(self, config: SnmpConfig, clock: Callable[[], int] = now_ns) -> None:
        kind = "storage" if config.role == "storage" else "network"
        labels = {"kind": kind, **config.labels}
        address = f"{config.host}:{config.port}"
        self.info = SourceInfo(config.id, "snmp", address, labels, config.accuracy)
        self._config = config
        # Leave a margin inside timeout_s, so a dead agent is reported by this source's own
        # message rather than by the poller's timeout.
        attempt_timeout_s = 0.9 * config.timeout_s / (config.retries + 1)
        self._client = SnmpClient(config, address, attempt_timeout_s, clock)
        self._ports: list[Port] | None = None  # None: walk before the next read
        self._processors: list[int] = []
        self._wide: dict[int, bool] = {}  # ifIndex -> has 64-bit counters (absent: try them)
        self._port_labels: dict[tuple[int, str], dict[str, str]] = {}  # (ifIndex, ifName)
        self._reads_since_walk = 0
        self._last_uptime: int | None = None
        self._announced_narrow: set[int] = set()
        self._announced_unknown_speed: set[int] = set()
        self._announced_missing: tuple[str, ...] = ()

    async def read(self) -> list[Reading]:
        """Read sysUpTime, the selected ports and the processors once."""
        if self._ports is None or self._reads_since_walk >= self._config.rewalk_every:
            await self._resolve()
        values, stamps = await self._read_values()
        uptime = values.get(SYS_UPTIME)
        if isinstance(uptime, int) and self._last_uptime is not None and uptime < self._last_uptime:
            # The agent restarted (or sysUpTime wrapped after 497 days): ports may have new
            # ifIndexes, so the values just read may belong to other ports.
            await self._resolve()
            values, stamps = await self._read_values()
            uptime = values.get(SYS_UPTIME)
        self._last_uptime = uptime if isinstance(uptime, int) else None
        self._reads_since_walk += 1
        return self._readings(values, stamps)

    async def prepare(self) -> None:
        """Set up before the first tick (agent/startup.py): the engine and the table walk."""
        await self._resolve()

    def timeout_hint(self) -> str:
        """What no answer within timeout_s means for this target (the poller's message)."""
        return f"v{self._config.version}: {no_answer_hint(self._config)}"

    async def close(self) -> None:
        """Close the engine's transport."""
        self._client.close()

    # -- resolution -------------------------------------------------------------------

    async def _resolve(self) -> None:
        self._ports = None
        self._last_uptime = None
        self._wide = {}
        self._port_labels = {}
        selection = self._config.interfaces
        ports: list[Port] = []
        if selection is not None and selection.selects_any():
            alias = selection.if_alias_pattern is not None
            columns = [IF_NAME, IF_DESCR] + ([IF_ALIAS] if alias else [])
            table = await self._client.walk(columns)
            all_ports = build_ports(table[IF_NAME], table[IF_DESCR], table.get(IF_ALIAS, {}))
            ports, missing = select_ports(
                all_ports, selection.if_names, selection.if_alias_pattern, selection.if_indexes
            )
            if not ports:
                raise DeviceError(
                    f"{self.info.address}: no selected port found ({'; '.join(missing)}); "
                    f"ports seen: {describe_names(all_ports)}"
                )
            if missing and tuple(missing) != self._announced_missing:
                log.warning(
                    "selected ports not found",
                    source=self.info.id,
                    missing=missing,
                    seen=describe_names(all_ports),
                )
            self._announced_missing = tuple(missing)
        if self._config.role == "storage":
            loads = await self._client.walk([HR_PROCESSOR_LOAD])
            if not loads[HR_PROCESSOR_LOAD]:
                raise DeviceError(
                    f"{self.info.address}: no hrProcessorLoad ({HR_PROCESSOR_LOAD}) rows: check "
                    "that the device serves HOST-RESOURCES-MIB and the view includes it "
                    "(net-snmp fills it about a minute after it starts)"
                )
            self._processors = sorted(loads[HR_PROCESSOR_LOAD])
        await self._identify()
        self._ports = ports
        self._reads_since_walk = 0

    async def _identify(self) -> None:
        """Read sysDescr and sysObjectID with each walk (the device may have been replaced):
        one GET; a device that refuses them (a view without the system group) has none."""
        try:
            got = await self._client.get([SYS_DESCR, SYS_OBJECT_ID])
        except DeviceError:
            got = {}
        device = device_map(sys_descr=got.get(SYS_DESCR), sys_object_id=got.get(SYS_OBJECT_ID))
        if device != self.info.device:
            self.info = dataclasses.replace(self.info, device=device)

    # -- one read ---------------------------------------------------------------------

    async def _read_values(self) -> tuple[dict[str, Value], dict[str, int]]:
        assert self._ports is not None
        groups: list[tuple[str, ...]] = [(SYS_UPTIME,)]
        groups += [_port_oids(p.index, self._wide.get(p.index, True)) for p in self._ports]
        groups += [(f"{HR_PROCESSOR_LOAD}.{i}",) for i in self._processors]
        values, stamps = await self._client.get_groups(groups)
        narrow = []
        for p in self._ports:
            if p.index not in self._wide:
                self._wide[p.index] = has_wide_counters(values, p.index)
                if not self._wide[p.index]:
                    narrow.append(p)
        if narrow:
            more, more_stamps = await self._client.get_groups(
                [fallback_oids(p.index) for p in narrow]
            )
            values.update(more)
            stamps.update(more_stamps)
            new = [p for p in narrow if p.index not in self._announced_narrow]
            if new:
                self._announced_narrow.update(p.index for p in new)
                log.info(
                    "ports fall back to 32-bit counters (no ifHCInOctets/ifHCOutOctets)",
                    source=self.info.id,
                    ports=[p.name for p in new],
                )
        return values, stamps

    def _readings(self, values: dict[str, Value], stamps: dict[str, int]) -> list[Reading]:
        assert self._ports is not None
        readings: list[Reading] = []
        uptime = values.get(SYS_UPTIME)
        if isinstance(uptime, int):
            readings.append(Reading(UPTIME, uptime / TICKS_PER_S, stamps[SYS_UPTIME]))
        unknown_speed: list[Port] = []
        for port in self._ports:
            port_readings = self._port_readings(port, values, stamps)
            if port_readings is None:
                self._reads_since_walk = self._config.rewalk_every  # walk again next read
                continue
            readings += port_readings
            if any(r.metric is SPEED_UNKNOWN and r.value for r in port_readings):
                unknown_speed.append(port)
        new = [p for p in unknown_speed if p.index not in self._announced_unknown_speed]
        if new:
            self._announced_unknown_speed.update(p.index for p in new)
            log.info(
                "line rate unknown (ifHighSpeed and ifSpeed 0): set "
                "interfaces.speed_override_bps for these ports",
                source=self.info.id,
                ports=[p.name for p in new],
            )
        if self._processors:
            readings.append(self._cpu_reading(values, stamps))
        if not any(r.metric is not UPTIME for r in readings):
            raise DeviceError(
                f"{self.info.address}: no selected port answered with octet counters: check "
                "that the view includes IF-MIB"
            )
        return readings

    def _port_readings(
        self, port: Port, values: dict[str, Value], stamps: dict[str, int]
    ) -> list[Reading] | None:
        counters = merge_counters(values, port.index)
        if counters is None:
            return None
        v_in, v_out, modulus = counters
        in_spec, out_spec = (IN_64, OUT_64) if modulus == COUNTER64_MODULUS else (IN_32, OUT_32)
        # The time of the PDU that carried the counters (the 32-bit ones may come later).
        wide = modulus == COUNTER64_MODULUS
        oids = _port_oids(port.index, wide)
        ts = stamps[oids[0]]
        # One labels mapping per port, kept between reads (nothing changes a reading's).
        labels = self._port_labels.get((port.index, port.name))
        if labels is None:
            labels = {"if_index": str(port.index), "if_name": port.name}
            self._port_labels[(port.index, port.name)] = labels
        out = [
            Reading(in_spec, float(v_in), ts, labels),
            Reading(out_spec, float(v_out), ts, labels),
        ]
        selection = self._config.interfaces
        override = selection.override_for(port) if selection is not None else None
        # oids: the counters, ifHighSpeed, ifSpeed, ifCounterDiscontinuityTime (port_oids).
        rate = override or line_rate_bps(values.get(oids[2]), values.get(oids[3]))
        if rate is not None:
            out.append(Reading(SPEED, rate, ts, labels))
        out.append(Reading(SPEED_UNKNOWN, 0.0 if rate is not None else 1.0, ts, labels))
        ticks = values.get(oids[4])
        if isinstance(ticks, int):
            out.append(Reading(DISCONTINUITY, ticks / TICKS_PER_S, ts, labels))
        return out

    def _cpu_reading(self, values: dict[str, Value], stamps: dict[str, int]) -> Reading:
        oids = [f"{HR_PROCESSOR_LOAD}.{i}" for i in self._processors]
        loads = {i: values.get(oid) for i, oid in zip(self._processors, oids, strict=True)}
        if any(v is None for v in loads.values()):
            self._reads_since_walk = self._config.rewalk_every  # processors changed
        try:
            mean = mean_processor_load(loads)
        except ValueError as exc:
            raise DeviceError(f"{self.info.address}: {exc}") from exc
        return Reading(CPU_UTIL, mean, stamps[oids[0]])
