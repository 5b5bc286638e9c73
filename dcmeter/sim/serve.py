"""`dcmeter simulate`: one process serving a whole simulated site over the real protocols.

Two Modbus TCP meters (site total and IT), one BMC per server (IPMI lanplus with DCMI), one
SNMP agent per switch and per storage system, all on loopback ports of their own and all
driven by one `SimSite`, so their answers agree with each other and with the true energies.
Every device runs in one asyncio loop; nothing here starts a thread per device.

Ports are free ones picked at each start, or, with `base_port` N, N, N+1, ... in the order
of `DEVICE_ORDER`, the same at every start. It can write a complete agent config that reads
every device and the matching site file. With a `[calibration]` table it adds a power
calibration bench (bench.py): servers loaded through a file, planted DCMI errors, and a
reference power analyser on Modbus. `[site] bmc_protocol` adds Redfish BMCs (redfish.py) and
`[site] pdus` metered PDUs over SNMP (pdu.py). The `[simulate]` table and the written agent
config and site file are in endpoints.py.
"""

from __future__ import annotations

import asyncio
import json
import time
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from dcmeter.base.configfile import ConfigError
from dcmeter.sim.bench import ANALYSER_NAME, SimCalibration, bench_site
from dcmeter.sim.endpoints import (
    IT_POINT,
    Endpoint,
    SimEndpoints,
    agent_config_toml,
    agent_sources,
    site_toml,
    sources_toml,
)
from dcmeter.sim.pdu import SimPdu, site_pdus
from dcmeter.sim.redfish import redfish_name
from dcmeter.sim.site import Device, SimSite, SimSiteConfig, Switch

if TYPE_CHECKING:
    from dcmeter.sim.bmc import PowerReading
# The order in which devices take ports from base_port on (and are listed in the ports file).
DEVICE_ORDER = (
    "meter-total, meter-it, then the servers' IPMI BMCs (server-0001, ...; not with "
    "bmc_protocol = \"redfish\"), the switches, the storage systems, the reference power "
    "analyser (analyser-001) when the simulate file has a [calibration] table, then the "
    "servers' Redfish BMCs (with bmc_protocol \"redfish\" or \"both\"), then the PDUs "
    "(pdu-001, ...)"
)
# What the demo, the tests and `dcmeter simulate` import from here (endpoints.py holds them).
__all__ = [
    "DEVICE_ORDER", "IT_POINT", "Endpoint", "SimEndpoints", "SimulateFile", "Simulation",
    "agent_config_toml", "agent_sources", "serve_forever", "site_toml", "sources_toml",
]


class SimulateFile(BaseModel):
    """A simulate file: `[simulate]`, `[site]` and, for a power calibration bench,
    `[calibration]`."""

    model_config = ConfigDict(extra="forbid")

    simulate: SimEndpoints = Field(default_factory=SimEndpoints)
    site: SimSiteConfig = Field(default_factory=SimSiteConfig)
    calibration: SimCalibration | None = None


class Simulation:
    """Every simulated device of one site, started and stopped together in the running loop."""

    def __init__(
        self, site: SimSite, endpoints: SimEndpoints, calibration: SimCalibration | None = None
    ) -> None:
        self.site = site
        self.settings = endpoints
        self.calibration = calibration
        self.endpoints: list[Endpoint] = []
        self._devices: list[Any] = []  # each has `async stop()`
        self.pdus: list[SimPdu] = site_pdus(site)

    async def start(self) -> list[Endpoint]:
        """Start every device on a free port; return where each listens."""
        from dcmeter.sim.bmc import SimBmc
        from dcmeter.sim.meters import SimMeter
        from dcmeter.sim.snmp import SimSnmpAgent

        cfg = self.settings
        bmcs = self.site.config.bmc_protocol
        ipmi, redfish = bmcs in ("ipmi", "both"), bmcs in ("redfish", "both")
        servers = len(self.site.servers)
        count = 2 + servers * (ipmi + redfish) + len(self.site.switches) + len(self.site.storage)
        count += (self.calibration is not None) + len(self.pdus)
        if cfg.base_port is not None and cfg.base_port + count - 1 > 65535:
            raise ConfigError(
                f"base_port {cfg.base_port}: {count} devices need ports up to "
                f"{cfg.base_port + count - 1}, past 65535"
            )
        roles: tuple[tuple[Literal["total", "it"], str], ...] = (
            ("total", cfg.total_profile), ("it", cfg.it_profile)
        )
        try:
            for role, profile in roles:
                meter = SimMeter(profile, self._meter_values(role), identity={
                    0x00: "dcmeter simulator", 0x01: profile, 0x02: "1.0",
                    0x05: f"simulated {profile} meter ({role})"})
                await self._add(meter, f"meter-{role}", "modbus", role)
            for server in self.site.servers if ipmi else ():
                bmc = SimBmc(
                    self._bmc_power(server),
                    username=cfg.bmc_username,
                    password=cfg.bmc_password.get_secret_value(),
                )
                await self._add(bmc, server.name, "ipmi", "compute")
            community = cfg.snmp_community.get_secret_value()
            for switch in self.site.switches:
                agent = SimSnmpAgent(
                    community=community,
                    interfaces=self._interfaces(switch),
                    sys_name=switch.device.name,
                    boot_t=self.site.t0,
                )
                await self._add(agent, switch.device.name, "snmp", "network")
            for storage in self.site.storage:
                agent = SimSnmpAgent(
                    community=community,
                    cpu_loads=self._cpu_loads(storage),
                    sys_name=storage.name,
                    boot_t=self.site.t0,
                )
                await self._add(agent, storage.name, "snmp", "storage")
            if self.calibration is not None:
                await self._add(self._analyser(self.calibration), ANALYSER_NAME, "modbus",
                                "reference")
            await self._add_redfish_and_pdus(redfish, community)
        except BaseException:
            await self.stop()
            raise
        return self.endpoints

    async def _add_redfish_and_pdus(self, redfish: bool, community: str) -> None:
        from dcmeter.sim.pdu import pdu_objects
        from dcmeter.sim.redfish import SimRedfish
        from dcmeter.sim.snmp import SimSnmpAgent

        cfg = self.settings
        for i, server in enumerate(self.site.servers if redfish else ()):
            bmc = SimRedfish(
                server.name, server.power_w, server.energy_j, username=cfg.bmc_username,
                password=cfg.bmc_password.get_secret_value(), energy_start_kwh=12.5 * (i + 1))
            name = redfish_name(server.name, self.site.config.bmc_protocol)
            await self._add(bmc, name, "redfish", "compute")
        for pdu in self.pdus:
            agent = SimSnmpAgent(community=community, sys_name=pdu.name, boot_t=self.site.t0,
                                 extra=pdu_objects(pdu))
            await self._add(agent, pdu.name, "snmp", "pdu")

    async def stop(self) -> None:
        """Stop every device."""
        devices, self._devices = self._devices, []
        for device in devices:
            await device.stop()

    async def _add(self, device: Any, name: str, protocol: Any, role: str) -> None:
        host, base = self.settings.host, self.settings.base_port
        wanted = 0 if base is None else base + len(self.endpoints)
        try:
            port = int(await device.start(host, wanted))
        except (OSError, RuntimeError) as exc:  # pymodbus says RuntimeError for a bind failure
            transport = "tcp" if protocol in ("modbus", "redfish") else "udp"
            where = f"port {wanted}/{transport}" if wanted else "a free port"
            reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else "bind failed"
            raise ConfigError(
                f"{name} ({protocol}) cannot listen on {host} {where} ({reason}): is the "
                "port taken? stop what holds it or choose another base_port (--base-port)"
            ) from None
        self._devices.append(device)
        self.endpoints.append(Endpoint(name, protocol, role, port))

    def _meter_values(self, role: Literal["total", "it"]) -> Any:
        return lambda: self.site.meter_values(role, time.time())

    def _analyser(self, calibration: SimCalibration) -> Any:
        """The reference analyser: ΣP·(1 + a) of the servers under calibration, and energy
        (1 + a)·∫ΣP dt from the simulation's start (kWh)."""
        from dcmeter.sim.meters import SimMeter

        servers = [s for s in self.site.servers if s.name in calibration.servers]
        gain = 1 + calibration.analyser_gain_error

        def values() -> dict[str, float]:
            t = time.time()
            return {
                "power_w": gain * sum(s.power_w(t) for s in servers),
                "energy_import_kwh": gain * sum(s.energy_j(t) for s in servers) / 3.6e6,
                "energy_export_kwh": 0.0,
                "frequency_hz": 50.0,
            }

        profile = calibration.analyser_profile
        return SimMeter(profile, values, calibration.analyser_device_id, identity={
            0x00: "dcmeter simulator", 0x01: profile, 0x02: "1.0",
            0x05: f"simulated reference power analyser ({profile})",
            0x80: calibration.analyser_serial})

    def _bmc_power(self, server: Device) -> Any:
        from dcmeter.sim.bmc import PowerReading

        period = 60.0
        # A server under calibration reports P·(1 + g) + o: the planted DCMI error.
        gain, offset = 1.0, 0.0
        if self.calibration is not None and server.name in self.calibration.servers:
            gain = 1 + self.calibration.dcmi_gain_error
            offset = self.calibration.dcmi_offset_w

        def reading() -> PowerReading:
            t = time.time()
            start = max(self.site.t0, t - period)
            samples = [server.power_w(start + (t - start) * i / 8) for i in range(9)]
            average = server.mean_power_w(start, t) if t > start else server.power_w(t)
            return PowerReading(
                current_w=server.power_w(t) * gain + offset,
                minimum_w=min(samples) * gain + offset,
                maximum_w=max(samples) * gain + offset,
                average_w=average * gain + offset,
                period_s=t - start if t > start else 1.0,
            )

        return reading

    def _interfaces(self, switch: Switch) -> list[Any]:
        from dcmeter.sim.snmp import SimInterface

        return [
            SimInterface(
                index=p.index,
                name=p.name,
                alias=p.alias,
                speed_mbps=round(p.speed_bps / 1e6),
                in_octets=p.in_octets,
                out_octets=p.out_octets,
                hc=p.hc,
            )
            for p in switch.ports
        ]

    def _cpu_loads(self, storage: Device) -> Any:
        # Two controllers sharing the load evenly, as hrProcessorLoad reports them.
        return lambda t: [100 * storage.load.at(t)] * 2


async def serve_forever(config: SimulateFile, stop: asyncio.Event) -> None:
    """Run the simulation until `stop` is set; write the ports and agent config if asked."""
    site = SimSite.build(config.site, time.time())
    if config.calibration is not None:
        site = bench_site(site, config.calibration)
    sim = Simulation(site, config.simulate, config.calibration)
    endpoints = await sim.start()
    try:
        settings = config.simulate
        if settings.ports_file is not None:
            rows = [{"name": e.name, "protocol": e.protocol, "role": e.role, "port": e.port}
                    for e in endpoints]
            settings.ports_file.write_text(json.dumps(rows, indent=1) + "\n")
        if settings.agent_config is not None:
            settings.agent_config.write_text(
                agent_config_toml(endpoints, settings, config.calibration, sim.pdus))
        if settings.site_file is not None:
            settings.site_file.write_text(site_toml(
                endpoints, sim.pdus, config.site.bmc_protocol, settings.reconcile_window_s))
        counts: dict[str, int] = {}
        for e in endpoints:
            counts[e.protocol] = counts.get(e.protocol, 0) + 1
        print(
            f"dcmeter simulate: {len(endpoints)} devices on {settings.host} "
            + ", ".join(f"{n} {p}" for p, n in sorted(counts.items())),
            flush=True,
        )
        await stop.wait()
    finally:
        await sim.stop()
