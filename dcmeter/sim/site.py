"""A simulated site's physics, device by device, with the true energies in closed form.

Every server's load follows its own swing, `u(t) = base + swing·sin(ω(t - t0) + φ)`, and its
input power (GB 40879 point 8, what its BMC reports over DCMI) is affine in the load:
`idle + (max - idle)·u`. Switches and storage systems draw their own power, affine in their
load too. IT power is the sum of all of them; the site's total input adds cooling (a share of
IT plus a fixed part) and distribution losses (likewise). Switch ports carry traffic that is
a share of their line rate following the same kind of swing. Because every quantity is a
sinusoid plus a constant, every energy and every octet counter is an exact integral: the
simulated meters, BMCs and SNMP agents report the truth, and tests and benchmarks compare
what dcmeter measured with it.
"""

from __future__ import annotations

import math
import random
from dataclasses import dataclass
from typing import Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field


@dataclass(frozen=True, slots=True)
class Swing:
    """`base + amp·sin(ω(t - t0) + phase)` and its exact integral from t0."""

    t0: float
    base: float
    amp: float
    period_s: float
    phase: float = 0.0

    @property
    def omega(self) -> float:
        """Angular frequency (rad/s)."""
        return 2 * math.pi / self.period_s

    def at(self, t: float) -> float:
        """The value at `t`."""
        return self.base + self.amp * math.sin(self.omega * (t - self.t0) + self.phase)

    def integral(self, t: float) -> float:
        """The integral from t0 to `t` (value·s)."""
        x, w = t - self.t0, self.omega
        return self.base * x + self.amp * (math.cos(self.phase) - math.cos(w * x + self.phase)) / w


class Load(Protocol):
    """A device's load (0..1) as a function of time, and its exact integral from `t0`."""

    @property
    def t0(self) -> float:
        """The start of the integral (epoch s)."""
        ...

    def at(self, t: float) -> float:
        """The load at `t`."""
        ...

    def integral(self, t: float) -> float:
        """The integral of the load from t0 to `t` (s)."""
        ...


@dataclass(frozen=True, slots=True)
class Device:
    """A device whose power (W) is `idle + (max - idle)·load(t)`, load in 0..1."""

    name: str
    kind: Literal["compute", "storage", "network"]
    idle_w: float
    max_w: float
    load: Load  # a Swing, or a calibration bench's load file (bench.py)

    def power_w(self, t: float) -> float:
        """Input power at `t` (W)."""
        return self.idle_w + (self.max_w - self.idle_w) * self.load.at(t)

    def energy_j(self, t: float) -> float:
        """Energy since t0 (J)."""
        x = t - self.load.t0
        return self.idle_w * x + (self.max_w - self.idle_w) * self.load.integral(t)

    def mean_power_w(self, start: float, end: float) -> float:
        """Mean power over [start, end] (W)."""
        return (self.energy_j(end) - self.energy_j(start)) / (end - start)


@dataclass(frozen=True, slots=True)
class Port:
    """A switch port: traffic each way is a share of the line rate; counters in octets."""

    index: int
    name: str
    alias: str
    speed_bps: float
    inbound: Swing  # share of the line rate, 0..1
    outbound: Swing
    hc: bool = True

    def in_octets(self, t: float) -> float:
        """Octets received since t0."""
        return self.speed_bps / 8 * self.inbound.integral(t)

    def out_octets(self, t: float) -> float:
        """Octets sent since t0."""
        return self.speed_bps / 8 * self.outbound.integral(t)


@dataclass(frozen=True, slots=True)
class Switch:
    """A switch: its own power draw and its uplink ports."""

    device: Device
    ports: tuple[Port, ...]


class SimSiteConfig(BaseModel):
    """The `[site]` table of a simulate file: the size and shape of the simulated site."""

    model_config = ConfigDict(extra="forbid")

    seed: int = 1
    servers: int = Field(default=8, ge=0, le=10_000)
    server_idle_w: float = Field(default=180.0, gt=0)
    server_max_w: float = Field(default=650.0, gt=0)
    switches: int = Field(default=2, ge=0, le=1_000)
    ports_per_switch: int = Field(default=4, ge=1, le=64)
    line_rate_gbps: float = Field(default=25.0, gt=0)
    storage: int = Field(default=1, ge=0, le=1_000)
    other_it_kw: float = Field(
        default=0.0, ge=0, description="IT load of the rest of the site, not simulated per device"
    )
    period_s: float = Field(default=600.0, gt=0, description="period of the load swing")
    cooling_share: float = Field(default=0.22, ge=0)
    cooling_fixed_kw: float = Field(default=0.5, ge=0)
    loss_share: float = Field(default=0.04, ge=0)
    loss_fixed_kw: float = Field(default=0.1, ge=0)
    bmc_protocol: Literal["ipmi", "redfish", "both"] = Field(
        default="ipmi", description="what each server's BMC serves: IPMI, Redfish or both"
    )
    pdus: int = Field(default=0, ge=0, le=1_000, description="metered PDUs (SNMP, APC rPDU2)")
    pdu_profile: Literal["apc_rpdu2", "raritan_pdu2"] = Field(
        default="apc_rpdu2", description="the MIB the PDUs serve (agent/sources/pdu_mibs.py)"
    )
    pdu_loss_w: float = Field(
        default=0.0, ge=0, description="each PDU's own draw: its inlet minus its outlets (W)"
    )
    total_start_kwh: float = Field(default=1234.5, ge=0)
    it_start_kwh: float = Field(default=987.25, ge=0)


@dataclass(frozen=True, slots=True)
class SimSite:
    """Every device of a simulated site and the site's meters, as functions of time."""

    t0: float
    config: SimSiteConfig
    servers: tuple[Device, ...]
    switches: tuple[Switch, ...]
    storage: tuple[Device, ...]
    other: tuple[Device, ...] = ()

    @classmethod
    def build(cls, config: SimSiteConfig, t0: float) -> SimSite:
        """Lay out the site: loads and phases drawn from `config.seed`, reproducibly."""
        rng = random.Random(config.seed)

        def swing(lo: float, hi: float) -> Swing:
            base = rng.uniform(lo, hi)
            amp = rng.uniform(0.3, 0.8) * min(base, 1 - base)
            return Swing(t0, base, amp, config.period_s, rng.uniform(0, 2 * math.pi))

        servers = tuple(
            Device(f"server-{i + 1:04d}", "compute", config.server_idle_w, config.server_max_w,
                   swing(0.2, 0.8))
            for i in range(config.servers)
        )
        speed = config.line_rate_gbps * 1e9
        switches = tuple(
            Switch(
                Device(f"switch-{j + 1:03d}", "network", 220.0, 380.0, swing(0.1, 0.6)),
                tuple(
                    Port(p + 1, f"Eth1/{p + 1}", "uplink" if p < 2 else "server",
                         speed, swing(0.05, 0.6), swing(0.05, 0.6))
                    for p in range(config.ports_per_switch)
                ),
            )
            for j in range(config.switches)
        )
        storage = tuple(
            Device(f"storage-{k + 1:03d}", "storage", 400.0, 900.0, swing(0.1, 0.7))
            for k in range(config.storage)
        )
        kw = config.other_it_kw * 1000
        other = (Device("other-it", "compute", 0.6 * kw, 1.4 * kw, swing(0.3, 0.7)),) if kw else ()
        return cls(t0, config, servers, switches, storage, other)

    def it_devices(self) -> list[Device]:
        """Every device whose input counts as IT load."""
        return [*self.servers, *(s.device for s in self.switches), *self.storage, *self.other]

    def it_w(self, t: float) -> float:
        """IT power at `t` (W)."""
        return sum(d.power_w(t) for d in self.it_devices())

    def it_energy_j(self, t: float) -> float:
        """IT energy since t0 (J)."""
        return sum(d.energy_j(t) for d in self.it_devices())

    def _affine(self) -> tuple[float, float]:
        """Total = a·IT + b (W)."""
        c = self.config
        a = 1 + c.cooling_share + c.loss_share
        return a, (c.cooling_fixed_kw + c.loss_fixed_kw) * 1000

    def total_w(self, t: float) -> float:
        """Total input power at `t` (W)."""
        a, b = self._affine()
        return a * self.it_w(t) + b

    def total_energy_j(self, t: float) -> float:
        """Total energy since t0 (J)."""
        a, b = self._affine()
        return a * self.it_energy_j(t) + b * (t - self.t0)

    def meter_values(self, role: Literal["total", "it"], t: float) -> dict[str, float]:
        """What the site's `total` or `it` meter shows at `t`: power in W, energy in kWh."""
        if role == "total":
            return {
                "power_w": self.total_w(t),
                "energy_import_kwh": self.config.total_start_kwh + self.total_energy_j(t) / 3.6e6,
                "energy_export_kwh": 0.0,
                "frequency_hz": 50.0,
            }
        return {
            "power_w": self.it_w(t),
            "energy_import_kwh": self.config.it_start_kwh + self.it_energy_j(t) / 3.6e6,
        }

    def truth(self, start: float, end: float) -> dict[str, float]:
        """True energies (kWh), PUE and mean loads over [start, end]."""
        total = (self.total_energy_j(end) - self.total_energy_j(start)) / 3.6e6
        it = (self.it_energy_j(end) - self.it_energy_j(start)) / 3.6e6
        servers = sum(d.energy_j(end) - d.energy_j(start) for d in self.servers) / 3.6e6
        span = end - start

        def mean_load(devices: tuple[Device, ...]) -> float:
            if not devices:
                return 0.0
            return sum(
                (d.load.integral(end) - d.load.integral(start)) / span for d in devices
            ) / len(devices)

        return {
            "total": total,
            "it": it,
            "green": 0.0,
            "pue": total / it if it else math.nan,
            "servers": servers,
            "u_compute": mean_load(self.servers),
            "u_storage": mean_load(self.storage),
        }
