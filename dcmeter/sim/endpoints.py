"""The `[simulate]` table, where each simulated device listens, and the files written for them.

The agent config that reads every simulated device (`agent_sources`, `agent_config_toml`) and
the matching site file (`site_toml`, with one [[reconcile]] set per simulated PDU).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from dcmeter.sim.bench import SimCalibration
from dcmeter.sim.pdu import SimPdu, pdu_sources, reconcile_toml

# The GB 40879 point the simulated IT meter stands for: it sits at the PDU outputs.
IT_POINT = "it_pdu"


class SimEndpoints(BaseModel):
    """`[simulate]`: where the devices listen and how they are reached."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    total_profile: str = "eastron_sdm630"
    it_profile: str = "schneider_pm5100"
    bmc_username: str = "admin"
    bmc_password: SecretStr = SecretStr("secret")
    snmp_community: SecretStr = SecretStr("public")
    base_port: int | None = Field(
        default=None, ge=1, le=65535,
        description="first port; devices take base_port, base_port + 1, ... (DEVICE_ORDER)",
    )
    agent_config: Path | None = Field(
        default=None, description="write an agent config reading every simulated device here"
    )
    site_file: Path | None = Field(
        default=None, description="write the site file matching the agent config here"
    )
    ports_file: Path | None = Field(default=None, description="write the ports as JSON here")
    agent_id: str = Field(default="sim-agent", pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")
    interval_s: float = Field(default=10.0, ge=1, le=900)
    collector_url: str = Field(default="http://127.0.0.1:8470", pattern=r"^https?://[^\s/]+")
    state_dir: Path | None = Field(
        default=None, description="the agent's state dir; default <agent config>.state beside it"
    )
    reconcile_window_s: float = Field(
        default=3600.0, gt=0,
        description="the shortest window the written [[reconcile]] allowance covers (s)",
    )


@dataclass(frozen=True, slots=True)
class Endpoint:
    """One simulated device: what it is and where it listens."""

    name: str
    protocol: Literal["modbus", "ipmi", "snmp", "redfish"]
    role: str  # total / it meter, compute, network, storage, reference (the analyser), pdu
    port: int


def agent_sources(
    endpoints: list[Endpoint], settings: SimEndpoints, calibration: SimCalibration | None = None,
    pdus: Sequence[SimPdu] = (),
) -> list[dict[str, Any]]:
    """The `[[sources]]` of an agent config that reads every simulated device."""
    sources: list[dict[str, Any]] = []
    servers = {p.name: tuple(d.name for d in p.servers) for p in pdus}
    profiles = {p.name: p.profile for p in pdus}
    for e in endpoints:
        common: dict[str, Any] = {"id": e.name, "host": settings.host, "port": e.port}
        if e.protocol == "modbus" and e.role == "reference":
            assert calibration is not None  # only a bench has an analyser
            # The analyser measures the servers' input (GB 40879 point 8, as their BMCs do);
            # role "reference" keeps it out of every sum: the site file does not name it.
            sources.append({**common, "type": "modbus", "profile": calibration.analyser_profile,
                            "device_id": calibration.analyser_device_id, "accuracy": 0.01,
                            "labels": {"point": "it_input", "role": "reference"}})
        elif e.protocol == "modbus":
            profile = settings.total_profile if e.role == "total" else settings.it_profile
            point = "total" if e.role == "total" else IT_POINT
            sources.append({**common, "type": "modbus", "profile": profile,
                            "accuracy": 0.005, "labels": {"point": point}})
        elif e.protocol == "redfish":
            # Plain HTTP on loopback: the simulated BMC serves no TLS (sim/redfish.py).
            sources.append({"id": e.name, "type": "redfish",
                            "url": f"http://{settings.host}:{e.port}",
                            "username": settings.bmc_username,
                            "password": settings.bmc_password.get_secret_value(),
                            "labels": {"point": "it_input", "kind": "compute"}})
        elif e.role == "pdu":
            sources += pdu_sources(common, settings.snmp_community.get_secret_value(),
                                   servers.get(e.name, ()), profiles.get(e.name, "apc_rpdu2"))
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
    if isinstance(value, list):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return json.dumps(value)


def sources_toml(sources: list[dict[str, Any]]) -> str:
    """Render `[[sources]]` tables (flat values and inline tables only)."""
    out: list[str] = []
    for source in sources:
        out.append("[[sources]]")
        out.extend(f"{k} = {_toml_value(v)}" for k, v in source.items())
        out.append("")
    return "\n".join(out)


def agent_config_toml(
    endpoints: list[Endpoint], settings: SimEndpoints, calibration: SimCalibration | None = None,
    pdus: Sequence[SimPdu] = (),
) -> str:
    """A complete agent config, [agent], [collector] and [[sources]], for `agent run -c`."""
    assert settings.agent_config is not None
    state_dir = settings.state_dir or settings.agent_config.with_name(
        settings.agent_config.name + ".state"
    )
    return (
        "# written by `dcmeter simulate`: an agent that reads every simulated device\n"
        "# (dcmeter agent run -c THIS_FILE; enrol its key: dcmeter agent key -c THIS_FILE)\n\n"
        "[agent]\n"
        f"id = {_toml_value(settings.agent_id)}\n"
        f"interval_s = {settings.interval_s:g}\n"
        f"state_dir = {_toml_value(str(state_dir.absolute()))}\n\n"
        "[collector]\n"
        f"url = {_toml_value(settings.collector_url)}\n\n"
        + sources_toml(agent_sources(endpoints, settings, calibration, pdus))
    )


def site_toml(
    endpoints: list[Endpoint], pdus: Sequence[SimPdu] = (), bmc_protocol: str = "ipmi",
    window_s: float = 3600.0,
) -> str:
    """The site file of the simulated site: its meters as E_total and E_IT, no green supply;
    with PDUs one [[reconcile]] set per PDU over its servers' BMCs."""
    total = [e.name for e in endpoints if e.protocol == "modbus" and e.role == "total"]
    it = [e.name for e in endpoints if e.protocol == "modbus" and e.role == "it"]
    return (
        "# written by `dcmeter simulate`: the site file matching its agent config\n"
        "[site]\n"
        'name = "dcmeter simulated site"\n'
        'region = "east-2023"\n\n'
        "[energy]\n"
        f"total = {_toml_value(total)}\n"
        f"it = {_toml_value(it)}\n"
        "green = []  # the simulated site has no green supply\n"
        f"it_point = {_toml_value(IT_POINT)}  # the simulated IT meter sits at the PDU outputs\n"
        + "".join(
            f"# {e.name} (role reference) is the calibration bench's reference analyser: it is\n"
            "# in no sum above, only a calibration reads it\n"
            for e in endpoints if e.role == "reference"
        )
        + "".join(reconcile_toml(p, bmc_protocol, window_s) for p in pdus)
    )
