"""Metered PDUs over SNMP: the OIDs, units and scaling of three vendors' MIBs (pure, no I/O).

Every OID is numeric (the MIBs are not loaded). Each profile names the table columns that
hold the inlet's and the outlets' active power and energy, and how a raw value becomes W or
kWh. The MIB object, its SYNTAX and its UNITS or DESCRIPTION are quoted beside each OID
(MIB texts as published by the vendors, e.g. librenms/librenms mibs/apc/PowerNet-MIB,
mibs/raritan/PDU2-MIB, mibs/sentry/Sentry4-MIB).

Values arrive as int, str or None (noSuchObject/noSuchInstance/endOfMibView), as in
snmp_oids.py. A device that answers -1 ("not supported" in PowerNet-MIB and Sentry4-MIB) has
no reading for that object.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Literal

from dcmeter.agent.sources.snmp_oids import Value

ProfileName = Literal["apc_rpdu2", "raritan_pdu2", "servertech_sentry4"]

# -- APC PowerNet-MIB, rPDU2 (rack PDU, 2nd generation): enterprises.318.1.1.26 -------------
# rPDU2DeviceStatusTable, INDEX rPDU2DeviceStatusIndex (one row per PDU of a daisy chain).
# rPDU2DeviceStatusPower, SYNTAX INTEGER: "The power consumption of the Rack PDU load in
# hundredths of kilowatts. Models that do not support this feature will respond to this OID
# with a value of -1."  -> W = raw x 10.
APC_DEVICE_POWER = "1.3.6.1.4.1.318.1.1.26.4.3.1.5"
# rPDU2DeviceStatusEnergy, SYNTAX INTEGER: "A user resettable energy meter measuring Rack PDU
# load energy consumption in tenths of kilowatt-hours." (-1 where unsupported) -> kWh = raw/10.
APC_DEVICE_ENERGY = "1.3.6.1.4.1.318.1.1.26.4.3.1.9"
# rPDU2OutletMeteredStatusTable, INDEX rPDU2OutletMeteredStatusIndex.
# rPDU2OutletMeteredStatusName, DisplayString: "The user-defined metered outlet ID string".
APC_OUTLET_NAME = "1.3.6.1.4.1.318.1.1.26.9.4.3.1.3"
# rPDU2OutletMeteredStatusPower, SYNTAX INTEGER: "Indicates the power draw of the load on the
# Rack PDU outlet being queried" (no UNITS clause; APC's rPDU2 documentation gives watts;
# to be confirmed on a real unit, see docs/sources.md).
APC_OUTLET_POWER = "1.3.6.1.4.1.318.1.1.26.9.4.3.1.7"
# rPDU2OutletMeteredStatusEnergy, SYNTAX INTEGER: "A user resettable energy meter measuring
# Rack PDU load energy consumption in tenths of kilowatt-hours" -> kWh = raw / 10.
APC_OUTLET_ENERGY = "1.3.6.1.4.1.318.1.1.26.9.4.3.1.11"
# rPDU2IdentTable (per PDU): rPDU2IdentFirmwareRev, rPDU2IdentModelNumber, rPDU2IdentSerialNumber.
APC_FIRMWARE = "1.3.6.1.4.1.318.1.1.26.2.1.6"
APC_MODEL = "1.3.6.1.4.1.318.1.1.26.2.1.8"
APC_SERIAL = "1.3.6.1.4.1.318.1.1.26.2.1.9"

# -- Raritan PDU2-MIB: enterprises.13742.6 ----------------------------------------------------
# inletSensorMeasurementsTable / outletSensorMeasurementsTable, INDEX { pduId, inletId |
# outletId, sensorType }; SensorTypeEnumeration activePower(5) (SensorUnits watt(3)),
# activeEnergy(8) (SensorUnits wattHour(5)).
# measurementsInletSensorValue / measurementsOutletSensorValue, Unsigned32: "The sensor
# reading as an unsigned integer. The value of this OID variable should be scaled by
# inletSensorDecimalDigits [outletSensorDecimalDigits]. For example, if the value is 1 and
# inletSensorDecimalDigits is 2, then actual value is 0.01. This value will wrap around if
# the scaled sensor reading exceeds 4294967295."  -> value = raw / 10**digits, in the
# sensor's unit; the energy counter wraps at 2**32 raw units.
RARITAN_INLET_VALUE = "1.3.6.1.4.1.13742.6.5.2.3.1.4"
RARITAN_OUTLET_VALUE = "1.3.6.1.4.1.13742.6.5.4.3.1.4"
# inletSensorDecimalDigits / outletSensorDecimalDigits (configuration tables, same INDEX),
# Unsigned32: "The number of digits displayed to the right of the decimal point."
RARITAN_INLET_DIGITS = "1.3.6.1.4.1.13742.6.3.3.4.1.7"
RARITAN_OUTLET_DIGITS = "1.3.6.1.4.1.13742.6.3.5.4.1.7"
# outletName (outletConfigurationTable, INDEX { pduId, outletId }): "The user-defined name."
RARITAN_OUTLET_NAME = "1.3.6.1.4.1.13742.6.3.5.3.1.3"
RARITAN_ACTIVE_POWER = 5
RARITAN_ACTIVE_ENERGY = 8
# pduModel, pduSerialNumber (nameplateTable, INDEX pduId); boardFirmwareVersion is per board.
RARITAN_MODEL = "1.3.6.1.4.1.13742.6.3.2.1.1.3"
RARITAN_SERIAL = "1.3.6.1.4.1.13742.6.3.2.1.1.4"

# -- ServerTech Sentry4-MIB: enterprises.1718.4 -----------------------------------------------
# st4InputCordMonitorTable, INDEX { st4UnitIndex, st4InputCordIndex }.
# st4InputCordActivePower, Integer32(-1..50000), UNITS "Watts".
SENTRY_CORD_POWER = "1.3.6.1.4.1.1718.4.1.3.3.1.3"
# st4InputCordEnergy, Integer32(-1..2147483647), UNITS "tenth Kilowatt-Hours" -> kWh = raw/10.
SENTRY_CORD_ENERGY = "1.3.6.1.4.1.1718.4.1.3.3.1.10"
# st4OutletConfigTable / st4OutletMonitorTable, INDEX { st4UnitIndex, st4InputCordIndex,
# st4OutletIndex }. st4OutletName, DisplayString(SIZE(0..32)): "The name of the outlet."
SENTRY_OUTLET_NAME = "1.3.6.1.4.1.1718.4.1.8.2.1.3"
# st4OutletActivePower, Integer32(-1..10000), UNITS "Watts".
SENTRY_OUTLET_POWER = "1.3.6.1.4.1.1718.4.1.8.3.1.7"
# st4OutletEnergy, Integer32(-1..2147483647), UNITS "Watt-Hours" (NOT tenths of kWh as the
# cord's) -> kWh = raw / 1000.
SENTRY_OUTLET_ENERGY = "1.3.6.1.4.1.1718.4.1.8.3.1.14"
# st4UnitProductSN, st4UnitModel (st4UnitConfigTable, INDEX st4UnitIndex);
# st4SystemFirmwareVersion.0.
SENTRY_SERIAL = "1.3.6.1.4.1.1718.4.1.2.2.1.4"
SENTRY_MODEL = "1.3.6.1.4.1.1718.4.1.2.2.1.5"
SENTRY_FIRMWARE = "1.3.6.1.4.1.1718.4.1.1.1.3.0"

# Raritan's Unsigned32 values wrap at 2**32 raw units. The APC and Sentry4 energies are signed
# INTEGER/Integer32 with no documented wrap, so their decreases are resets (modulus None).
UNSIGNED32_MODULUS = 2**32


@dataclass(frozen=True, slots=True)
class Scale:
    """raw -> value: value = raw x multiply / divide (exact in integers, one rounding)."""

    multiply: int = 1
    divide: int = 1

    def apply(self, raw: int) -> float:
        """The value in the metric's unit, rounded once to the nearest float."""
        return raw * self.multiply / self.divide


@dataclass(frozen=True, slots=True)
class Profile:
    """Where one vendor's MIB keeps inlet and outlet power and energy, and their scaling.

    `inlet_power` etc. are table columns; the rows are walked. Raritan's columns carry the
    sensor type as the last index part and a per-sensor decimal-digits column (`*_digits`);
    the other two have fixed scales. `mib` names the MIB for messages.
    """

    name: ProfileName
    mib: str
    inlet_power: str
    inlet_energy: str
    outlet_power: str
    outlet_energy: str
    outlet_name: str
    inlet_power_scale: Scale = Scale()
    inlet_energy_scale: Scale = Scale()  # to kWh
    outlet_power_scale: Scale = Scale()
    outlet_energy_scale: Scale = Scale()  # to kWh
    sensor_typed: bool = False  # Raritan: value columns indexed by (pdu, id, sensorType)
    inlet_digits: str = ""
    outlet_digits: str = ""
    identity: tuple[tuple[str, str], ...] = ()  # (device key, OID of row 1 / scalar)


PROFILES: dict[str, Profile] = {
    "apc_rpdu2": Profile(
        "apc_rpdu2", "PowerNet-MIB rPDU2",
        APC_DEVICE_POWER, APC_DEVICE_ENERGY, APC_OUTLET_POWER, APC_OUTLET_ENERGY, APC_OUTLET_NAME,
        inlet_power_scale=Scale(multiply=10), inlet_energy_scale=Scale(divide=10),
        outlet_energy_scale=Scale(divide=10),
        identity=(("model", APC_MODEL + ".1"), ("serial", APC_SERIAL + ".1"),
                  ("firmware", APC_FIRMWARE + ".1")),
    ),
    "raritan_pdu2": Profile(
        "raritan_pdu2", "PDU2-MIB",
        RARITAN_INLET_VALUE, RARITAN_INLET_VALUE, RARITAN_OUTLET_VALUE, RARITAN_OUTLET_VALUE,
        RARITAN_OUTLET_NAME,
        # Wh -> kWh on top of the decimal digits.
        inlet_energy_scale=Scale(divide=1000), outlet_energy_scale=Scale(divide=1000),
        sensor_typed=True, inlet_digits=RARITAN_INLET_DIGITS, outlet_digits=RARITAN_OUTLET_DIGITS,
        identity=(("model", RARITAN_MODEL + ".1"), ("serial", RARITAN_SERIAL + ".1")),
    ),
    "servertech_sentry4": Profile(
        "servertech_sentry4", "Sentry4-MIB",
        SENTRY_CORD_POWER, SENTRY_CORD_ENERGY, SENTRY_OUTLET_POWER, SENTRY_OUTLET_ENERGY,
        SENTRY_OUTLET_NAME,
        inlet_energy_scale=Scale(divide=10), outlet_energy_scale=Scale(divide=1000),
        identity=(("model", SENTRY_MODEL + ".1"), ("serial", SENTRY_SERIAL + ".1"),
                  ("firmware", SENTRY_FIRMWARE)),
    ),
}


@dataclass(frozen=True, slots=True)
class Channel:
    """One metered thing, an inlet (cord) or an outlet: its row index and the OIDs read.

    `key` is the row index as the MIB has it ("1", "1.3" or "1.1.3"); `number` the
    outlet's (or inlet's) number that the config and the `outlet`/`inlet` label use: the last
    index part but the sensor type. `power_oid`/`energy_oid` may be "" where the device has
    no such row. `power_scale`/`energy_scale` are final (Raritan: digits included).
    """

    key: str
    number: int
    name: str
    power_oid: str
    energy_oid: str
    power_scale: Scale
    energy_scale: Scale
    energy_modulus_kwh: float | None = None


def scale_with_digits(base: Scale, digits: Value) -> Scale:
    """A Raritan sensor's scale: raw / 10**digits, then the base (Wh -> kWh)."""
    d = digits if isinstance(digits, int) and 0 <= digits <= 9 else 0
    return Scale(base.multiply, base.divide * 10**d)


def channels(
    profile: Profile,
    outlet: bool,
    power_rows: Mapping[str, Value],
    energy_rows: Mapping[str, Value],
    names: Mapping[str, Value],
    digits: Mapping[str, Value],
) -> list[Channel]:
    """The inlets (outlet=False) or outlets found in walked columns (rows keyed by suffix).

    For sensor-typed tables (Raritan) the suffix is pdu.id.sensorType and digits are keyed
    the same way; only pdu 1 is read (a daisy-chained unit is configured as its own PDU).
    For the others every row is a channel; its number is the last index part.
    """
    base_p = profile.outlet_power_scale if outlet else profile.inlet_power_scale
    base_e = profile.outlet_energy_scale if outlet else profile.inlet_energy_scale
    power_col = profile.outlet_power if outlet else profile.inlet_power
    energy_col = profile.outlet_energy if outlet else profile.inlet_energy
    found: dict[str, Channel] = {}
    if profile.sensor_typed:
        for suffix in sorted({*power_rows, *energy_rows}, key=_suffix_order):
            parts = suffix.split(".")
            if len(parts) != 3 or parts[0] != "1":
                continue
            key = ".".join(parts[:2])
            sensor = int(parts[2])
            if sensor not in (RARITAN_ACTIVE_POWER, RARITAN_ACTIVE_ENERGY):
                continue
            prev = found.get(key) or Channel(
                key, int(parts[1]), _text(names.get(key)), "", "", base_p, base_e
            )
            scale = scale_with_digits(base_p if sensor == RARITAN_ACTIVE_POWER else base_e,
                                      digits.get(suffix))
            oid = f"{power_col}.{suffix}"
            if sensor == RARITAN_ACTIVE_POWER:
                prev = replace(prev, power_oid=oid, power_scale=scale)
            else:
                # Unsigned32 wraps at 2**32 raw units (the MIB's DESCRIPTION).
                modulus = UNSIGNED32_MODULUS * scale.multiply / scale.divide
                prev = replace(prev, energy_oid=oid, energy_scale=scale,
                               energy_modulus_kwh=modulus)
            found[key] = prev
        return [found[k] for k in sorted(found, key=_suffix_order)]
    for suffix in sorted({*power_rows, *energy_rows}, key=_suffix_order):
        found[suffix] = Channel(
            suffix,
            int(suffix.split(".")[-1]),
            _text(names.get(suffix)),
            f"{power_col}.{suffix}" if suffix in power_rows else "",
            f"{energy_col}.{suffix}" if suffix in energy_rows else "",
            base_p,
            base_e,
        )
    return list(found.values())


def scaled(raw: Value, scale: Scale) -> float | None:
    """The value of a raw reading, or None where it is missing or -1 (not supported)."""
    if not isinstance(raw, int) or raw < 0:
        return None
    return scale.apply(raw)


def _text(value: Value) -> str:
    return value if isinstance(value, str) else ""


def _suffix_order(suffix: str) -> tuple[int, ...]:
    return tuple(int(p) for p in suffix.split(".") if p.isdigit())

