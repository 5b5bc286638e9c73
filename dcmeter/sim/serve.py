"""`dcmeter simulate`: one process serving a whole simulated site over the real protocols.

Two Modbus TCP meters (site total and IT), one BMC per server (IPMI lanplus with DCMI), one
SNMP agent per switch and per storage system, all on loopback ports of their own and all
driven by one `SimSite`, so their answers agree with each other and with the true energies.
Every device runs in one asyncio loop; nothing here starts a thread per device.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from dcmeter.sim.site import Device, SimSite, SimSiteConfig, Switch

if TYPE_CHECKING:
    from dcmeter.sim.bmc import PowerReading


class SimEndpoints(BaseModel):
    """`[simulate]`: where the devices listen and how they are reached."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    total_profile: str = "eastron_sdm630"
    it_profile: str = "schneider_pm5100"
    bmc_username: str = "admin"
    bmc_password: SecretStr = SecretStr("secret")
    snmp_community: SecretStr = SecretStr("public")
    agent_config: Path | None = Field(
        default=None, description="write an agent config reading every simulated device here"
    )
    ports_file: Path | None = Field(default=None, description="write the ports as JSON here")


class SimulateFile(BaseModel):
    """A simulate file: `[simulate]` and `[site]`."""

    model_config = ConfigDict(extra="forbid")

    simulate: SimEndpoints = Field(default_factory=SimEndpoints)
    site: SimSiteConfig = Field(default_factory=SimSiteConfig)


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One simulated device: what it is and where it listens."""

    name: str
    protocol: Literal["modbus", "ipmi", "snmp"]
    role: str  # total / it meter, compute, network, storage
    port: int


class Simulation:
    """Every simulated device of one site, started and stopped together in the running loop."""

    def __init__(self, site: SimSite, endpoints: SimEndpoints) -> None:
        self.site = site
        self.settings = endpoints
        self.endpoints: list[Endpoint] = []
        self._devices: list[Any] = []  # each has `async stop()`

    async def start(self) -> list[Endpoint]:
        """Start every device on a free port; return where each listens."""
        from dcmeter.sim.bmc import SimBmc
        from dcmeter.sim.meters import SimMeter
        from dcmeter.sim.snmp import SimSnmpAgent

        host, cfg = self.settings.host, self.settings
        roles: tuple[tuple[Literal["total", "it"], str], ...] = (
            ("total", cfg.total_profile), ("it", cfg.it_profile)
        )
        for role, profile in roles:
            meter = SimMeter(profile, self._meter_values(role))
            await self._add(meter, meter.start(host), f"meter-{role}", "modbus", role)
        for server in self.site.servers:
            bmc = SimBmc(
                self._bmc_power(server),
                username=cfg.bmc_username,
                password=cfg.bmc_password.get_secret_value(),
            )
            await self._add(bmc, bmc.start(host), server.name, "ipmi", "compute")
        community = cfg.snmp_community.get_secret_value()
        for switch in self.site.switches:
            agent = SimSnmpAgent(
                community=community,
                interfaces=self._interfaces(switch),
                sys_name=switch.device.name,
                boot_t=self.site.t0,
            )
            await self._add(agent, agent.start(host), switch.device.name, "snmp", "network")
        for storage in self.site.storage:
            agent = SimSnmpAgent(
                community=community,
                cpu_loads=self._cpu_loads(storage),
                sys_name=storage.name,
                boot_t=self.site.t0,
            )
            await self._add(agent, agent.start(host), storage.name, "snmp", "storage")
        return self.endpoints

    async def stop(self) -> None:
        """Stop every device."""
        devices, self._devices = self._devices, []
        for device in devices:
            await device.stop()

    async def _add(
        self, device: Any, starting: Any, name: str, protocol: Any, role: str
    ) -> None:
        port = int(await starting)
        self._devices.append(device)
        self.endpoints.append(Endpoint(name, protocol, role, port))

    def _meter_values(self, role: Literal["total", "it"]) -> Any:
        return lambda: self.site.meter_values(role, time.time())

    def _bmc_power(self, server: Device) -> Any:
        from dcmeter.sim.bmc import PowerReading

        period = 60.0

        def reading() -> PowerReading:
            t = time.time()
            start = max(self.site.t0, t - period)
            samples = [server.power_w(start + (t - start) * i / 8) for i in range(9)]
            average = server.mean_power_w(start, t) if t > start else server.power_w(t)
            return PowerReading(
                current_w=server.power_w(t),
                minimum_w=min(samples),
                maximum_w=max(samples),
                average_w=average,
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


def agent_sources(endpoints: list[Endpoint], settings: SimEndpoints) -> list[dict[str, Any]]:
    """The `[[sources]]` of an agent config that reads every simulated device."""
    sources: list[dict[str, Any]] = []
    for e in endpoints:
        common: dict[str, Any] = {"id": e.name, "host": settings.host, "port": e.port}
        if e.protocol == "modbus":
            profile = settings.total_profile if e.role == "total" else settings.it_profile
            point = "total" if e.role == "total" else "it_pdu"
            sources.append({**common, "type": "modbus", "profile": profile,
                            "accuracy": 0.005, "labels": {"point": point}})
        elif e.protocol == "ipmi":
            sources.append({**common, "type": "ipmi", "username": settings.bmc_username,
                            "password": settings.bmc_password.get_secret_value(),
                            "labels": {"point": "it_input", "kind": "compute"}})
        else:
            entry = {**common, "type": "snmp", "version": "2c",
                     "community": settings.snmp_community.get_secret_value()}
            if e.role == "storage":
                entry.update(role="storage", labels={"kind": "storage"})
            else:
                entry.update(interfaces={"if_alias_pattern": "^uplink"}, labels={"kind": "network"})
            sources.append(entry)
    return sources


def _toml_value(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml_value(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


def sources_toml(sources: list[dict[str, Any]]) -> str:
    """Render `[[sources]]` tables (flat values and inline tables only)."""
    out: list[str] = []
    for source in sources:
        out.append("[[sources]]")
        out.extend(f"{k} = {_toml_value(v)}" for k, v in source.items())
        out.append("")
    return "\n".join(out)


async def serve_forever(config: SimulateFile, stop: asyncio.Event) -> None:
    """Run the simulation until `stop` is set; write the ports and agent config if asked."""
    site = SimSite.build(config.site, time.time())
    sim = Simulation(site, config.simulate)
    endpoints = await sim.start()
    try:
        settings = config.simulate
        if settings.ports_file is not None:
            rows = [{"name": e.name, "protocol": e.protocol, "role": e.role, "port": e.port}
                    for e in endpoints]
            settings.ports_file.write_text(json.dumps(rows, indent=1) + "\n")
        if settings.agent_config is not None:
            settings.agent_config.write_text(
                "# written by `dcmeter simulate`: every simulated device as a source\n\n"
                + sources_toml(agent_sources(endpoints, settings))
            )
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
