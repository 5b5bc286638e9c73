"""Sources: one instance per target; each turns one device's answers into readings.

A source only reads. It knows nothing of buffers, batches or HTTP. Adding a protocol means
one module here, one line in `REGISTRY`, one block in `config/agent.toml` and one test module.
Vendor libraries are imported inside the source module only, so an unused protocol costs
nothing.
"""

from __future__ import annotations

import importlib
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any, Protocol

if TYPE_CHECKING:
    from pydantic import BaseModel

    from dcmeter.agent.samples import Reading, SourceInfo
class SourceError(Exception):
    """A target could not be read; the message says why without any secret."""


class TargetUnreachable(SourceError):
    """The device did not answer (connection refused, timeout)."""


class DeviceError(SourceError):
    """The device answered with an error (exception code, unsupported register)."""


class Source(Protocol):
    """The contract every source fulfils."""

    info: SourceInfo

    async def read(self) -> list[Reading]:
        """Read every metric of this target once; raise SourceError when the target fails."""
        ...

    async def close(self) -> None:
        """Release connections."""
        ...

    # Optional: `timeout_hint() -> str`, what no answer within timeout_s means for this
    # target (agent/scheduler.py timeout_reason puts it into the poller's message).
    # Optional: `async prepare() -> None`, the set-up a first read would do (sessions, table
    # walks), run before the first tick by agent/startup.py; raises SourceError like read().


# type name -> "module:ConfigClass". The config class is a pydantic model with a
# `type: Literal[...]` field and a `build() -> Source` method.
REGISTRY: dict[str, str] = {
    "modbus": "dcmeter.agent.sources.modbus:ModbusConfig",
    "host": "dcmeter.agent.sources.host:HostConfig",
    "ipmi": "dcmeter.agent.sources.ipmi:IpmiConfig",
    "snmp": "dcmeter.agent.sources.snmp:SnmpConfig",
    "nvml": "dcmeter.agent.sources.nvml:NvmlConfig",
    "redfish": "dcmeter.agent.sources.redfish:RedfishConfig",
    "npu": "dcmeter.agent.sources.npu:NpuConfig",  # runs npu-smi: no vendor module
}


# type name -> the vendor modules its source imports on first use. The agent imports them
# when it builds its sources, before the first tick: importing pysnmp or pymodbus takes
# tenths of a second and blocks the event loop, which would otherwise eat into the first
# tick's timeouts and fail healthy targets. Loading a config still imports none of them.
VENDOR_MODULES: dict[str, tuple[str, ...]] = {
    "modbus": ("pymodbus.client", "pymodbus.exceptions"),
    "ipmi": ("pyipmi", "pyipmi.interfaces", "pyipmi.errors"),
    "snmp": ("pysnmp.hlapi.v3arch.asyncio", "pysnmp.error"),
    "nvml": ("pynvml",),
    "redfish": ("httpx",),
}


def vendor_types(configs: Iterable[object]) -> set[str]:
    """The keys of VENDOR_MODULES the given source configs need. An SNMP source (a switch,
    a storage system, a PDU: roles of one type) needs pysnmp only for version 3: v2c goes
    through the agent's own codec (snmp_codec.py), and pysnmp with pyasn1 would hold ~20 MB
    of an agent that reads v2c only (docs/benchmarks.md section 2). Likewise a Modbus
    meter needs pymodbus only on a serial line (RTU): Modbus TCP goes through
    modbus_codec.py."""
    out: set[str] = set()
    for c in configs:
        name = str(getattr(c, "type", ""))
        if name == "snmp" and getattr(c, "version", "2c") != "3":
            continue
        if name == "modbus" and getattr(c, "transport", "tcp") != "rtu":
            continue
        out.add(name)
    return out


def import_vendor_modules(type_names: set[str]) -> None:
    """Import the vendor libraries of the given source types (see VENDOR_MODULES)."""
    for name in sorted(type_names):
        for module in VENDOR_MODULES.get(name, ()):
            importlib.import_module(module)


class SourceConfig(Protocol):
    """What every source's config model offers besides validation."""

    id: str
    timeout_s: float

    def build(self) -> Source:
        """Make the source this config describes."""
        ...


def config_class(type_name: str) -> type[BaseModel]:
    """Import the config model of one registered source type (not its vendor library)."""
    module_name, _, class_name = REGISTRY[type_name].partition(":")
    module: Any = importlib.import_module(module_name)
    cls: type[BaseModel] = getattr(module, class_name)
    return cls
