"""`snmp` source, role `pdu`: inlet and outlet active power and energy of a metered PDU.

Profiles (pdu_mibs.py): APC PowerNet-MIB rPDU2, Raritan PDU2-MIB, ServerTech Sentry4-MIB.
Per inlet (label `inlet`, its number): `power_w` (gauge, W) and `energy_import_kwh` (counter,
kWh); per selected outlet (labels `outlet`, `outlet_name`, and `point`/`server` where the
config says the outlet feeds one server) the same two metrics. The source's labels default to
`kind = "meter"`, `point = "it_pdu"` (GB 40879: the PDU's output to the IT equipment).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping

import structlog

from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo, device_map, now_ns
from dcmeter.agent.sources import DeviceError
from dcmeter.agent.sources.pdu_mibs import PROFILES, Channel, Profile, channels, scaled
from dcmeter.agent.sources.snmp_client import SnmpClient, no_answer_hint
from dcmeter.agent.sources.snmp_config import OutletSelection, SnmpSettings
from dcmeter.agent.sources.snmp_oids import SYS_DESCR, SYS_OBJECT_ID, Value

log = structlog.get_logger("dcmeter.agent.snmp")

POWER = MetricSpec("power_w", "W")


def energy_spec(modulus_kwh: float | None) -> MetricSpec:
    """The energy counter (kWh), with its wrap where the MIB defines one."""
    return MetricSpec("energy_import_kwh", "kWh", "counter", modulus_kwh)


class PduSource:
    """One metered PDU over SNMP: walks its inlet and outlet tables, then GETs their values.

    The tables are walked on the first read, every `rewalk_every` reads, and when a value
    read stops answering (outlets renumbered, a unit replaced).
    """

    def __init__(self, config: SnmpSettings, clock: Callable[[], int] = now_ns) -> None:
        assert config.profile is not None  # the config's validator guarantees it
        labels = {"kind": "meter", "point": "it_pdu", **config.labels}
        address = f"{config.host}:{config.port}"
        self.info = SourceInfo(config.id, "snmp", address, labels, config.accuracy)
        self._config = config
        self._profile: Profile = PROFILES[config.profile]
        attempt_timeout_s = 0.9 * config.timeout_s / (config.retries + 1)
        self._client = SnmpClient(config, address, attempt_timeout_s, clock)
        self._inlets: list[Channel] | None = None
        self._outlets: list[tuple[Channel, OutletSelection | None]] = []
        self._reads_since_walk = 0
        self._announced_missing: tuple[int, ...] = ()

    async def prepare(self) -> None:
        """Set up before the first tick (agent/startup.py): the engine and the table walks."""
        await self._resolve()

    async def read(self) -> list[Reading]:
        """Read every inlet's and selected outlet's power and energy once."""
        if self._inlets is None or self._reads_since_walk >= self._config.rewalk_every:
            await self._resolve()
        assert self._inlets is not None
        every = [*self._inlets, *(c for c, _ in self._outlets)]
        groups = [tuple(o for o in (c.power_oid, c.energy_oid) if o) for c in every]
        values, stamps = await self._client.get_groups([g for g in groups if g])
        self._reads_since_walk += 1
        readings: list[Reading] = []
        for inlet in self._inlets:
            readings += self._channel_readings(inlet, {"inlet": inlet.key}, values, stamps)
        for outlet, selection in self._outlets:
            labels = {
                "outlet": str(outlet.number), "outlet_row": outlet.key, "outlet_name": outlet.name
            }
            if selection is not None and selection.point is not None:
                labels["point"] = selection.point
            if selection is not None and selection.server is not None:
                labels["server"] = selection.server
            readings += self._channel_readings(outlet, labels, values, stamps)
        if not readings:
            raise DeviceError(
                f"{self.info.address}: no power or energy value answered "
                f"({self._profile.mib}): check the view includes it"
            )
        return readings

    def timeout_hint(self) -> str:
        """What no answer within timeout_s means for this target (the poller's message)."""
        return f"v{self._config.version}: {no_answer_hint(self._config)}"

    async def close(self) -> None:
        """Close the engine's transport."""
        self._client.close()

    def _channel_readings(
        self,
        channel: Channel,
        labels: Mapping[str, str],
        values: Mapping[str, Value],
        stamps: Mapping[str, int],
    ) -> list[Reading]:
        out: list[Reading] = []
        for oid, scale, spec in (
            (channel.power_oid, channel.power_scale, POWER),
            (channel.energy_oid, channel.energy_scale, energy_spec(channel.energy_modulus_kwh)),
        ):
            if not oid:
                continue
            value = scaled(values.get(oid), scale)
            if oid not in values or values[oid] is None:
                self._reads_since_walk = self._config.rewalk_every  # row gone: walk again
            if value is not None:
                out.append(Reading(spec, value, stamps[oid], labels))
        return out

    async def _resolve(self) -> None:
        p = self._profile
        columns = [p.inlet_power, p.inlet_energy]
        if p.inlet_digits:
            columns.append(p.inlet_digits)
        want_outlets = self._config.outlets == "all" or bool(self._config.outlets)
        if want_outlets:
            columns += [p.outlet_power, p.outlet_energy, p.outlet_name]
            if p.outlet_digits:
                columns.append(p.outlet_digits)
        table = await self._client.walk_suffixes(list(dict.fromkeys(columns)))
        empty: dict[str, Value] = {}
        inlets = channels(
            p, False, table[p.inlet_power], table[p.inlet_energy], empty,
            table.get(p.inlet_digits, empty),
        )
        if not inlets:
            raise DeviceError(
                f"{self.info.address}: the device does not serve {p.mib} (no rows under "
                f"{p.inlet_power}): check profile {p.name!r} and that the view includes it"
            )
        outlets: list[tuple[Channel, OutletSelection | None]] = []
        if want_outlets:
            found = channels(
                p, True, table[p.outlet_power], table[p.outlet_energy], table[p.outlet_name],
                table.get(p.outlet_digits, empty),
            )
            outlets = self._select(found)
        await self._identify()
        self._inlets = inlets
        self._outlets = outlets
        self._reads_since_walk = 0

    def _select(self, found: list[Channel]) -> list[tuple[Channel, OutletSelection | None]]:
        if self._config.outlets == "all":
            return [(c, None) for c in found]
        by_number: dict[int, list[Channel]] = {}
        for c in found:
            by_number.setdefault(c.number, []).append(c)
        chosen: list[tuple[Channel, OutletSelection | None]] = []
        missing: list[int] = []
        for selection in self._config.outlets:
            hits = by_number.get(selection.index, [])
            if len(hits) > 1:
                raise DeviceError(
                    f"{self.info.address}: outlet {selection.index} is ambiguous (rows "
                    f"{', '.join(c.key for c in hits)}): this PDU has several units or cords"
                )
            if hits:
                chosen.append((hits[0], selection))
            else:
                missing.append(selection.index)
        if not chosen:
            raise DeviceError(
                f"{self.info.address}: no selected outlet found ({missing}); outlets seen: "
                f"{sorted(by_number) or 'none'}"
            )
        if missing and tuple(missing) != self._announced_missing:
            log.warning("selected outlets not found", source=self.info.id, missing=missing)
        self._announced_missing = tuple(missing)
        return chosen

    async def _identify(self) -> None:
        """sysDescr, sysObjectID and the profile's model/serial/firmware, once per walk; a
        device that refuses them has none."""
        oids = [SYS_DESCR, SYS_OBJECT_ID, *(oid for _, oid in self._profile.identity)]
        try:
            got = await self._client.get(oids)
        except DeviceError:
            got = {}
        extra = {key: got.get(oid) for key, oid in self._profile.identity}
        device = device_map(
            sys_descr=got.get(SYS_DESCR), sys_object_id=got.get(SYS_OBJECT_ID),
            profile=self._profile.name, **extra,
        )
        if device != self.info.device:
            self.info = dataclasses.replace(self.info, device=device)
