"""Simulated metered PDUs: the servers' input power through outlets, read over SNMP (APC rPDU2).

`[site] pdus = N` spreads the servers over N PDUs in order, one server per outlet (PDU k gets
servers k·m + 1 … (k + 1)·m, m = ⌈servers / N⌉). An outlet's power is its server's input
power (GB 40879 point 8, the same model the BMC reports); the inlet's is the sum of its outlets
plus `pdu_loss_w` (the PDU's own draw). Energies are the exact integrals from t0 plus a start
value. The SNMP agent (snmp.py) serves them as APC PowerNet-MIB rPDU2 holds them
(agent/sources/pdu_mibs.py quotes the MIB): inlet power in hundredths of kW (rounded), inlet
and outlet energy in tenths of kWh (floored, as a counter steps), outlet power in whole W.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from dcmeter.agent.sources import pdu_mibs as apc
from dcmeter.sim.site import Device, SimSite

# The register steps of rPDU2's energy objects (tenths of kWh) and inlet power (hundredths kW).
ENERGY_STEP_KWH = 0.1
# The energy counter's step (kWh) by profile: rPDU2 tenths of kWh; PDU2-MIB activeEnergy in Wh
# at 0 decimal digits (what a Raritan PX3 reports).
STEP_KWH = {"apc_rpdu2": ENERGY_STEP_KWH, "raritan_pdu2": 0.001}
INLET_POWER_STEP_W = 10.0
# Where the counters start: a PDU that has been in service a while.
INLET_START_KWH = 1520.35
OUTLET_START_KWH = 40.25  # outlet n starts at n × this
MODEL = "AP8941 (dcmeter simulator)"
FIRMWARE = "v6.9.6"


@dataclass(frozen=True, slots=True)
class SimPdu:
    """One metered PDU: its servers, one per outlet (outlet n = servers[n − 1])."""

    name: str
    number: int  # 1, 2, …: its serial and counters' start follow from it
    servers: tuple[Device, ...]
    loss_w: float
    t0: float
    profile: str = "apc_rpdu2"  # the MIB it serves: apc_rpdu2 or raritan_pdu2

    def outlet_power_w(self, n: int, t: float) -> float:
        """Outlet n's power at t (W): its server's input power."""
        return self.servers[n - 1].power_w(t)

    def outlet_energy_kwh(self, n: int, t: float) -> float:
        """Outlet n's energy counter at t (kWh): its start plus the exact integral."""
        return n * OUTLET_START_KWH + self.servers[n - 1].energy_j(t) / 3.6e6

    def inlet_power_w(self, t: float) -> float:
        """The inlet's power at t (W): the outlets' sum plus the PDU's own draw."""
        return sum(s.power_w(t) for s in self.servers) + self.loss_w

    def inlet_energy_kwh(self, t: float) -> float:
        """The inlet's energy counter at t (kWh)."""
        joules = sum(s.energy_j(t) for s in self.servers) + self.loss_w * (t - self.t0)
        return INLET_START_KWH + self.number + joules / 3.6e6

    @property
    def serial(self) -> str:
        """The PDU's serial number (rPDU2IdentSerialNumber)."""
        return f"SIM-PDU-{self.number:04d}"


def site_pdus(site: SimSite) -> list[SimPdu]:
    """The site's PDUs (`[site] pdus`), the servers spread over them in order."""
    n = site.config.pdus
    if n == 0:
        return []
    per = max(1, math.ceil(len(site.servers) / n))
    return [
        SimPdu(f"pdu-{k + 1:03d}", k + 1, site.servers[k * per:(k + 1) * per],
               site.config.pdu_loss_w, site.t0, site.config.pdu_profile)
        for k in range(n)
    ]


def _oid(text: str, *index: int) -> tuple[int, ...]:
    return (*(int(p) for p in text.split(".")), *index)


def apc_objects(pdu: SimPdu) -> dict[tuple[int, ...], Callable[[float], int | str]]:
    """The rPDU2 objects of one PDU (device row 1, outlet rows 1..n) as SimSnmpAgent extras."""
    objects: dict[tuple[int, ...], Callable[[float], int | str]] = {
        # rPDU2DeviceStatusPower: hundredths of kW; rPDU2DeviceStatusEnergy: tenths of kWh.
        _oid(apc.APC_DEVICE_POWER, 1): lambda t: round(pdu.inlet_power_w(t) / INLET_POWER_STEP_W),
        _oid(apc.APC_DEVICE_ENERGY, 1): lambda t: math.floor(pdu.inlet_energy_kwh(t) * 10),
        _oid(apc.APC_MODEL, 1): lambda t: MODEL,
        _oid(apc.APC_SERIAL, 1): lambda t: pdu.serial,
        _oid(apc.APC_FIRMWARE, 1): lambda t: FIRMWARE,
    }
    for n, server in enumerate(pdu.servers, start=1):
        objects.update(_outlet_objects(pdu, n, server.name))
    return objects


def pdu_objects(pdu: SimPdu) -> dict[tuple[int, ...], Callable[[float], int | str]]:
    """The objects of the PDU's profile, as SimSnmpAgent extras."""
    return raritan_objects(pdu) if pdu.profile == "raritan_pdu2" else apc_objects(pdu)


def raritan_objects(pdu: SimPdu) -> dict[tuple[int, ...], Callable[[float], int | str]]:
    """PDU2-MIB (pdu 1, inlet 1, outlets 1..n): measurements…SensorValue for activePower(5)
    in W and activeEnergy(8) in Wh, each at 0 decimal digits (…SensorDecimalDigits = 0);
    the power rounded, the energy floored. Served as INTEGER, not Unsigned32: the same number
    to the source and to snmpget; values stay far below 2^31."""
    power, energy = apc.RARITAN_ACTIVE_POWER, apc.RARITAN_ACTIVE_ENERGY
    inlet, outlet = apc.RARITAN_INLET_VALUE, apc.RARITAN_OUTLET_VALUE
    objects: dict[tuple[int, ...], Callable[[float], int | str]] = {
        _oid(inlet, 1, 1, power): lambda t: round(pdu.inlet_power_w(t)),
        _oid(inlet, 1, 1, energy): lambda t: math.floor(pdu.inlet_energy_kwh(t) * 1000),
        _oid(apc.RARITAN_INLET_DIGITS, 1, 1, power): lambda t: 0,
        _oid(apc.RARITAN_INLET_DIGITS, 1, 1, energy): lambda t: 0,
        _oid(apc.RARITAN_MODEL, 1): lambda t: "PX3-5190R (dcmeter simulator)",
        _oid(apc.RARITAN_SERIAL, 1): lambda t: pdu.serial,
    }
    for n, server in enumerate(pdu.servers, start=1):
        name: str = server.name
        objects.update({
            _oid(apc.RARITAN_OUTLET_NAME, 1, n): _constant(name),
            _oid(outlet, 1, n, power): _outlet_fn(pdu, n, "W", 1),
            _oid(outlet, 1, n, energy): _outlet_fn(pdu, n, "kWh", 1000),
            _oid(apc.RARITAN_OUTLET_DIGITS, 1, n, power): lambda t: 0,
            _oid(apc.RARITAN_OUTLET_DIGITS, 1, n, energy): lambda t: 0,
        })
    return objects


def _constant(value: str) -> Callable[[float], int | str]:
    return lambda t: value


def _outlet_fn(pdu: SimPdu, n: int, unit: str, scale: int) -> Callable[[float], int | str]:
    """Outlet n's power (W, rounded) or energy (kWh × scale, floored)."""
    if unit == "W":
        return lambda t: round(pdu.outlet_power_w(n, t) * scale)
    return lambda t: math.floor(pdu.outlet_energy_kwh(n, t) * scale)


def _outlet_objects(
    pdu: SimPdu, n: int, name: str
) -> dict[tuple[int, ...], Callable[[float], int | str]]:
    """Outlet n's rPDU2OutletMeteredStatus row: name, power (W), energy (tenths of kWh)."""

    def power(t: float) -> int | str:
        return round(pdu.outlet_power_w(n, t))

    def energy(t: float) -> int | str:
        return math.floor(pdu.outlet_energy_kwh(n, t) * 10)

    return {_oid(apc.APC_OUTLET_NAME, n): lambda t: name,
            _oid(apc.APC_OUTLET_POWER, n): power, _oid(apc.APC_OUTLET_ENERGY, n): energy}


def resolution_allowance_w(window_s: float, step_kwh: float = ENERGY_STEP_KWH) -> float:
    """The allowance (W over the window) that covers the inlet counter's register step.

    The window's meter energy is the difference of two edge values, each interpolated between
    floored readings, so each is low by [0, q) and the difference is off by less than
    q = 0.1 kWh (ENERGY_STEP_KWH). Over a window of at least `window_s` seconds, q is
    q·1000 / (window_s / 3600) W held over the window; e.g. 100 W for a window of 1 h.
    The inlet power's 10 W step does not enter: the counter is preferred (energy.py).
    """
    return step_kwh * 1000 * 3600 / window_s


def pdu_sources(
    common: dict[str, Any], community: str, servers: Sequence[str], profile: str = "apc_rpdu2"
) -> list[dict[str, Any]]:
    """The agent's two `snmp` sources of one PDU (role pdu, profile apc_rpdu2).

    `NAME` reads the inlet only: it is the meter of the PDU's [[reconcile]] set, and the
    collector sums every series of a source's energy metric, so outlets read by the same
    source would count the load twice. `NAME-outlets` reads the outlets, each labelled with
    its server (point it_input, GB 40879 point 8); it is in no sum.
    """
    base = {**common, "type": "snmp", "version": "2c", "community": community, "role": "pdu",
            "profile": profile, "accuracy": 0.01}
    outlets = [{"index": n, "point": "it_input", "server": s}
               for n, s in enumerate(servers, start=1)]
    return [{**base, "labels": {"kind": "meter", "point": "it_pdu"}},
            {**base, "id": f"{common['id']}-outlets", "outlets": outlets or "all",
             "labels": {"kind": "meter", "point": "it_pdu"}}]


def reconcile_toml(pdu: SimPdu, bmc_protocol: str, window_s: float) -> str:
    """One [[reconcile]] set: the PDU's inlet over its servers' BMC sources.

    Expected loss: the model's exact pdu_loss_w. Allowance: the inlet counter's register step
    over a window of at least `window_s` (resolution_allowance_w); the BMCs' own errors and
    the PDU's (class 1) are in the reconciliation's U.
    """
    from dcmeter.sim.redfish import redfish_name

    if not pdu.servers:
        return f"# {pdu.name} feeds no server: no [[reconcile]] set\n"
    redfish = bmc_protocol in ("redfish", "both")
    below = [redfish_name(s.name, bmc_protocol) if redfish else s.name for s in pdu.servers]
    step = STEP_KWH[pdu.profile]
    allowance = resolution_allowance_w(window_s, step)
    return (
        f"\n[[reconcile]]\nname = {json.dumps(pdu.name + ' inlet')}\n"
        f"meter = {json.dumps(pdu.name)}\nbelow = {json.dumps(below)}\n"
        f"loss = {{ fixed_w = {pdu.loss_w!r} }}  # the PDU's own draw (pdu_loss_w)\n"
        f"allowance = {{ fixed_w = {allowance!r} }}  # the inlet counter's {step:g} kWh step over a"
        f" window of >= {window_s:g} s\n"
    )
