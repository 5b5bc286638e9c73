"""`snmp` source: switch egress ports and storage CPU over SNMP v2c/v3 (pysnmp, lazily).

A switch yields, per selected port (labels `if_index`, `if_name`): `if_in_octets` and
`if_out_octets` (counters, modulus 2**64 from ifHC*, or 2**32 where the port has only the
ifTable counters), `if_speed_bps`, `if_speed_unknown` (1 when the line rate is unknown and
no override is configured, else 0) and `if_counter_discontinuity_s`; plus `sys_uptime_s`.
A storage system yields `cpu_util_pct`, the mean hrProcessorLoad over its processors.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Annotated, Literal

import structlog
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from agent.samples import MetricSpec, Reading, SourceInfo, now_ns
from agent.sources import DeviceError
from agent.sources.base import SourceConfigBase
from agent.sources.snmp_client import SnmpClient, no_answer_hint
from agent.sources.snmp_oids import (
    COUNTER32_MODULUS,
    COUNTER64_MODULUS,
    HR_PROCESSOR_LOAD,
    IF_ALIAS,
    IF_COUNTER_DISCONTINUITY_TIME,
    IF_DESCR,
    IF_HIGH_SPEED,
    IF_NAME,
    IF_SPEED,
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

log = structlog.get_logger("dcmeter.agent.snmp")

IN_64 = MetricSpec("if_in_octets", "B", "counter", float(COUNTER64_MODULUS))
OUT_64 = MetricSpec("if_out_octets", "B", "counter", float(COUNTER64_MODULUS))
IN_32 = MetricSpec("if_in_octets", "B", "counter", float(COUNTER32_MODULUS))
OUT_32 = MetricSpec("if_out_octets", "B", "counter", float(COUNTER32_MODULUS))
SPEED = MetricSpec("if_speed_bps", "bit/s")
SPEED_UNKNOWN = MetricSpec("if_speed_unknown", "1")
DISCONTINUITY = MetricSpec("if_counter_discontinuity_s", "s")
UPTIME = MetricSpec("sys_uptime_s", "s")
CPU_UTIL = MetricSpec("cpu_util_pct", "%")

AuthProtocol = Literal["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"]
PrivProtocol = Literal["DES", "AES", "AES-128", "AES-192", "AES-256", "AES-192-C", "AES-256-C"]
SecurityLevel = Literal["noAuthNoPriv", "authNoPriv", "authPriv"]
PositiveBps = Annotated[float, Field(gt=0)]


class InterfaceSelection(BaseModel):
    """Which ports of a switch to read: any combination of names, alias pattern, indexes."""

    model_config = ConfigDict(extra="forbid")

    if_names: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    if_alias_pattern: str | None = None
    if_indexes: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(default_factory=list)
    # One line rate (bit/s) for every selected port, or a table by ifName or ifIndex.
    speed_override_bps: PositiveBps | dict[str, PositiveBps] | None = None

    @field_validator("if_alias_pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return pattern

    def selects_any(self) -> bool:
        """Whether at least one selector is given."""
        return bool(self.if_names or self.if_alias_pattern is not None or self.if_indexes)

    def override_for(self, port: Port) -> float | None:
        """The configured line rate of this port (by ifName, then ifIndex), if any."""
        override = self.speed_override_bps
        if isinstance(override, dict):
            return override.get(port.name, override.get(str(port.index)))
        return override


class SnmpConfig(SourceConfigBase):
    """A switch (egress ports) or a storage system (CPU load) over SNMP v2c or v3."""

    type: Literal["snmp"]
    host: str = Field(min_length=1)
    port: int = Field(default=161, ge=1, le=65535)
    version: Literal["2c", "3"] = "2c"
    community: SecretStr | None = None
    username: str | None = Field(default=None, min_length=1)
    security_level: SecurityLevel = "authPriv"
    auth_protocol: AuthProtocol = "SHA"
    auth_password: SecretStr | None = None
    priv_protocol: PrivProtocol = "AES"
    priv_password: SecretStr | None = None
    context_name: str = ""
    retries: int = Field(default=1, ge=0, le=5)
    role: Literal["switch", "storage"] = "switch"
    interfaces: InterfaceSelection | None = None
    rewalk_every: int = Field(default=60, ge=1, le=1_000_000)
    max_oids_per_request: int = Field(default=40, ge=1, le=200)

    @model_validator(mode="after")
    def _consistent(self) -> SnmpConfig:
        if self.version == "2c":
            self._check_v2c()
        else:
            self._check_v3()
        if self.role == "switch" and (self.interfaces is None or not self.interfaces.selects_any()):
            raise ValueError(
                "a switch needs interfaces with at least one of if_names, if_alias_pattern, "
                "if_indexes"
            )
        return self

    def _check_v2c(self) -> None:
        if self.community is None or not self.community.get_secret_value():
            raise ValueError("version 2c needs community")
        v3_only = [
            k
            for k in ("username", "auth_password", "priv_password")
            if getattr(self, k) is not None
        ]
        if v3_only or self.context_name:
            raise ValueError(f"{', '.join(v3_only or ['context_name'])}: only for version 3")

    def _check_v3(self) -> None:
        if self.community is not None:
            raise ValueError("community: only for version 2c (version 3 uses username)")
        if self.username is None:
            raise ValueError("version 3 needs username")
        needed = {
            "noAuthNoPriv": (),
            "authNoPriv": ("auth_password",),
            "authPriv": ("auth_password", "priv_password"),
        }[self.security_level]
        for key in ("auth_password", "priv_password"):
            secret: SecretStr | None = getattr(self, key)
            if key in needed and secret is None:
                raise ValueError(f"security_level {self.security_level} needs {key}")
            if key not in needed and secret is not None:
                raise ValueError(f"{key}: not used at security_level {self.security_level}")
            if secret is not None and len(secret.get_secret_value()) < 8:
                raise ValueError(f"{key}: at least 8 characters (RFC 3414)")

    def build(self) -> SnmpSource:
        """Make the source this config describes."""
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
        self._ports = ports
        self._reads_since_walk = 0

    # -- one read ---------------------------------------------------------------------

    async def _read_values(self) -> tuple[dict[str, Value], dict[str, int]]:
        assert self._ports is not None
        groups: list[tuple[str, ...]] = [(SYS_UPTIME,)]
        groups += [port_oids(p.index, self._wide.get(p.index, True)) for p in self._ports]
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
        ts = stamps[port_oids(port.index, modulus == COUNTER64_MODULUS)[0]]
        labels = {"if_index": str(port.index), "if_name": port.name}
        out = [
            Reading(in_spec, float(v_in), ts, labels),
            Reading(out_spec, float(v_out), ts, labels),
        ]
        selection = self._config.interfaces
        override = selection.override_for(port) if selection is not None else None
        rate = override or line_rate_bps(
            values.get(f"{IF_HIGH_SPEED}.{port.index}"), values.get(f"{IF_SPEED}.{port.index}")
        )
        if rate is not None:
            out.append(Reading(SPEED, rate, ts, labels))
        out.append(Reading(SPEED_UNKNOWN, 0.0 if rate is not None else 1.0, ts, labels))
        ticks = values.get(f"{IF_COUNTER_DISCONTINUITY_TIME}.{port.index}")
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
