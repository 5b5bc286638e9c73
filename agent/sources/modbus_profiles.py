"""Register maps of Modbus meters: one entry per metric, and the built-in meter profiles.

Addresses are 0-based protocol addresses, as sent on the wire: a manual's register 30073 or
40001-style number N is address N - 30001 (or N - 40001), and Schneider's register N is
address N - 1. This module holds plain data only; it does not import pymodbus.

CT/PT ratios: a meter wired through current (CT) and voltage (PT/VT) transformers either
applies the ratios itself and reports primary values, or reports what it sees on the
secondary side and leaves the ratios to the reader. A register marked `primary` is already
in primary units; any other register is multiplied by the source's ratios according to its
unit: currents by the CT ratio, voltages by the PT ratio, powers and energies by both, other
quantities (frequency, power factor) not at all.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from dcmeter.agent.samples import MetricSpec

RegisterType = Literal["u16", "i16", "u32", "i32", "u64", "i64", "float32", "float64"]

# Registers (16-bit words) each type occupies.
WORDS: dict[str, int] = {
    "u16": 1,
    "i16": 1,
    "u32": 2,
    "i32": 2,
    "float32": 2,
    "u64": 4,
    "i64": 4,
    "float64": 4,
}
INTEGER_TYPES = frozenset({"u16", "i16", "u32", "i32", "u64", "i64"})

# Units (case-insensitive) of the quantities that instrument-transformer ratios scale.
CURRENT_UNITS = frozenset({"a", "ma", "ka"})
VOLTAGE_UNITS = frozenset({"v", "mv", "kv"})
POWER_UNITS = frozenset(
    f"{prefix}{base}{hours}"
    for prefix in ("", "k", "m")
    for base in ("w", "va", "var")
    for hours in ("", "h")
)


class RegisterConfig(BaseModel):
    """One metric read from one or more consecutive registers of a meter."""

    # The key is `register` in config files; the attribute is `table` because pydantic's
    # BaseModel already has a `register` attribute (ABCMeta.register).
    model_config = ConfigDict(
        extra="forbid",
        frozen=True,
        validate_by_name=True,
        validate_by_alias=True,
        serialize_by_alias=True,
    )

    metric: str = Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=64)
    address: int = Field(ge=0, le=65535)
    table: Literal["holding", "input"] = Field(default="holding", alias="register")
    type: RegisterType
    word_order: Literal["big", "little"] = "big"
    scale: float = 1.0
    unit: str = Field(min_length=1)
    kind: Literal["gauge", "counter"] = "gauge"
    modulus: float | None = Field(default=None, gt=0)
    primary: bool = False

    @model_validator(mode="after")
    def _consistent(self) -> RegisterConfig:
        if self.scale == 0:
            raise ValueError("scale must not be 0")
        if self.address + self.words - 1 > 65535:
            raise ValueError(f"a {self.type} at address {self.address} runs past 65535")
        if self.modulus is not None and self.kind != "counter":
            raise ValueError("modulus is only meaningful for kind = 'counter'")
        return self

    @property
    def words(self) -> int:
        """Number of 16-bit registers this value occupies."""
        return WORDS[self.type]

    @property
    def effective_modulus(self) -> float | None:
        """Where the register wraps, in the metric's unit before any CT/PT ratio.

        The given modulus, else 2**bits * |scale| for an integer counter, else None.
        """
        if self.kind != "counter":
            return None
        if self.modulus is not None:
            return self.modulus
        if self.type in INTEGER_TYPES:
            return float(2 ** (16 * self.words)) * abs(self.scale)
        return None

    def ratio_factor(self, ct_ratio: float = 1.0, pt_ratio: float = 1.0) -> float:
        """Factor from this register's value to primary units (1 for `primary` registers)."""
        if self.primary:
            return 1.0
        unit = self.unit.casefold()
        if unit in CURRENT_UNITS:
            return ct_ratio
        if unit in VOLTAGE_UNITS:
            return pt_ratio
        if unit in POWER_UNITS:
            return ct_ratio * pt_ratio
        return 1.0

    def metric_spec(self, factor: float = 1.0) -> MetricSpec:
        """The metric this register yields, with its unit, kind and wrap modulus.

        `factor` is the CT/PT factor applied to the value; the modulus scales with it.
        """
        modulus = self.effective_modulus
        if modulus is not None:
            modulus *= factor
        return MetricSpec(self.metric, self.unit, self.kind, modulus)


def _reg(
    metric: str,
    address: int,
    register: Literal["holding", "input"],
    type_: RegisterType,
    unit: str,
    *,
    scale: float = 1.0,
    kind: Literal["gauge", "counter"] = "gauge",
    primary: bool = False,
) -> RegisterConfig:
    return RegisterConfig(
        metric=metric,
        address=address,
        table=register,
        type=type_,
        scale=scale,
        unit=unit,
        kind=kind,
        primary=primary,
    )


def _primary(*registers: RegisterConfig) -> list[RegisterConfig]:
    """Mark registers of a meter that applies its own CT/PT ratios (reports primary values)."""
    return [r.model_copy(update={"primary": True}) for r in registers]


PROFILES: dict[str, list[RegisterConfig]] = {
    # Eastron SDM630 (Modbus V2), three-phase. Every value is an IEEE 754 float32 in two input
    # registers (FC04), high word first. Checked against Eastron's "SDM630 Modbus Protocol
    # Implementation" tables as reproduced publicly (register 30053 total system power W at
    # 0x0034, 30071 frequency Hz at 0x0046, 30073 total import kWh at 0x0048, 30075 total
    # export kWh at 0x004A; the SDM72D-M protocol V1.1 lists the same addresses). The meter
    # rejects requests of an odd register count; every read here is of whole float32 pairs.
    # Primary values: the direct-connected SDM630 sees the circuit itself, and the CT model
    # (SDM630MCT) applies its configured CT ratio before reporting.
    "eastron_sdm630": _primary(
        _reg("power_w", 0x0034, "input", "float32", "W"),
        _reg("frequency_hz", 0x0046, "input", "float32", "Hz"),
        _reg("energy_import_kwh", 0x0048, "input", "float32", "kWh", kind="counter"),
        _reg("energy_export_kwh", 0x004A, "input", "float32", "kWh", kind="counter"),
    ),
    # Eastron SDM120 (-Modbus / -M), single-phase: float32 input registers, high word first.
    # Checked against the SDM120-M user manual register map as transcribed publicly (active
    # power W at 30013 = 0x000C) and Eastron's single-phase protocol table shared with the
    # SDM230 (30071 frequency 0x0046, 30073 import kWh 0x0048, 30075 export kWh 0x004A).
    # Direct-connected (45 A): primary values.
    "eastron_sdm120": _primary(
        _reg("power_w", 0x000C, "input", "float32", "W"),
        _reg("frequency_hz", 0x0046, "input", "float32", "Hz"),
        _reg("energy_import_kwh", 0x0048, "input", "float32", "kWh", kind="counter"),
        _reg("energy_export_kwh", 0x004A, "input", "float32", "kWh", kind="counter"),
    ),
    # Schneider Electric PowerLogic PM5100 (PM5110/PM5111), holding registers (FC03), register
    # N at protocol address N - 1, high word first. From the PM5100/PM5300 Modbus register list
    # (Schneider FAQ FA234017): register 3060 "Active Power Total", float32 in kW (converted to
    # W here), and register 3204 "Active Energy Delivered (Into Load)", INT64 in Wh (converted
    # to kWh). Checked against a published PowerLogic protocol mapping (3060 FLOAT32 kW, 3204
    # INT64 Wh) and the PM3200 manual, where register 3204 is address 0x0C83, Int64 Wh.
    # Primary values: CT and VT ratios are set in the meter, which reports primary quantities.
    "schneider_pm5100": _primary(
        _reg("power_w", 3059, "holding", "float32", "W", scale=1000.0),
        _reg("energy_import_kwh", 3203, "holding", "i64", "kWh", scale=0.001, kind="counter"),
    ),
    # Schneider Electric Acti9 iEM3000 series with Modbus (iEM3150/3155, iEM3250/3255,
    # iEM3350/3355): holding registers, register N at address N - 1, high word first.
    # Sources: a published ESPHome configuration for a working iEM3155 (htvekov/iem3155_esphome:
    # address 3059 total active power FP32 kW, 3035 average L-N voltage FP32 V, 3109
    # frequency FP32 Hz, 45099 total import FP32 kWh) and a published iEM3xxx request table
    # (0x0C83 = register 3204 total active energy import and 0x0C87 = register 3208 export,
    # 64-bit Wh), which matches the PowerLogic layout above. Energy is read from the 64-bit Wh
    # counters, not the float32 kWh copies at 45099/45101: a float32 keeps 24 bits, so at
    # 10 GWh it resolves only whole MWh. Certainty: addresses confirmed by two independent
    # public maps each (power, energy) or one working configuration (voltage, frequency); not
    # checked against a physical meter here. Primary values: the CT models (iEM3250/3255) take
    # their CT ratio in the meter's own configuration.
    "schneider_iem3155": _primary(
        _reg("power_w", 3059, "holding", "float32", "W", scale=1000.0),
        _reg("voltage_v", 3035, "holding", "float32", "V"),
        _reg("frequency_hz", 3109, "holding", "float32", "Hz"),
        _reg("energy_import_kwh", 3203, "holding", "i64", "kWh", scale=0.001, kind="counter"),
        _reg("energy_export_kwh", 3207, "holding", "i64", "kWh", scale=0.001, kind="counter"),
    ),
    # Acrel ADW300 (wireless/RS-485 metering meter with external CTs): holding registers,
    # 0-based addresses, high word first. Source: evcc's maintained meter template
    # acrel-adw300.yaml (voltage of phase A at 20, uint16 x 0.1 V; current of phase A at 26,
    # uint16 x 0.01 A; total active power at 36, int32 W; forward active energy at 62 and
    # reverse at 64, int32 x 0.01 kWh), which agrees with PEERS.md (register 62, int32 x 0.01
    # kWh). Certainty: one public map in use by others, no manual table seen. Treated as
    # primary values, as the template applies no ratio; if a meter of yours reports secondary
    # values, override the registers with primary = false and set ct_ratio.
    "acrel_adw300": _primary(
        _reg("voltage_v", 20, "holding", "u16", "V", scale=0.1),
        _reg("current_a", 26, "holding", "u16", "A", scale=0.01),
        _reg("power_w", 36, "holding", "i32", "W"),
        _reg("energy_import_kwh", 62, "holding", "i32", "kWh", scale=0.01, kind="counter"),
        _reg("energy_export_kwh", 64, "holding", "i32", "kWh", scale=0.01, kind="counter"),
    ),
    # Acrel ADL3000-E (DIN-rail three-phase meter, often CT/PT-connected): holding registers
    # (FC03), 0-based addresses, 32-bit values high word first. Source: the ADL3000-E manual's
    # "ADDR list" (section 9.1) as published on easymanua.ls: 000AH current forward active
    # total energy and 0014H current reversing active total energy, 4 bytes each, with
    # "E = data * PT * CT * 0.01 kWh ... applicable to all electric energy values". So these
    # registers hold SECONDARY values: set ct_ratio and pt_ratio to the transformers' ratios.
    # Certainty: one manual excerpt; signedness not stated there (read as unsigned).
    "acrel_adl3000": [
        _reg("energy_import_kwh", 0x000A, "holding", "u32", "kWh", scale=0.01, kind="counter"),
        _reg("energy_export_kwh", 0x0014, "holding", "u32", "kWh", scale=0.01, kind="counter"),
    ],
}
