"""Register maps of Modbus meters: one entry per metric, and the built-in meter profiles.

Addresses are 0-based protocol addresses, as sent on the wire: a manual's register 30073 or
40001-style number N is address N - 30001 (or N - 40001), and Schneider's register N is
address N - 1. This module holds plain data only; it does not import pymodbus.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from agent.samples import MetricSpec

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
        """Wrap modulus in the metric's unit: given, 2**bits * |scale| for integers, else None."""
        if self.kind != "counter":
            return None
        if self.modulus is not None:
            return self.modulus
        if self.type in INTEGER_TYPES:
            return float(2 ** (16 * self.words)) * abs(self.scale)
        return None

    def metric_spec(self) -> MetricSpec:
        """The metric this register yields, with its unit, kind and wrap modulus."""
        return MetricSpec(self.metric, self.unit, self.kind, self.effective_modulus)


def _reg(
    metric: str,
    address: int,
    register: Literal["holding", "input"],
    type_: RegisterType,
    unit: str,
    *,
    scale: float = 1.0,
    kind: Literal["gauge", "counter"] = "gauge",
) -> RegisterConfig:
    return RegisterConfig(
        metric=metric,
        address=address,
        table=register,
        type=type_,
        scale=scale,
        unit=unit,
        kind=kind,
    )


PROFILES: dict[str, list[RegisterConfig]] = {
    # Eastron SDM630 (Modbus V2), three-phase. Every value is an IEEE 754 float32 in two input
    # registers (FC04), high word first. Checked against Eastron's "SDM630 Modbus Protocol
    # Implementation" tables as reproduced publicly (register 30053 total system power W at
    # 0x0034, 30071 frequency Hz at 0x0046, 30073 total import kWh at 0x0048, 30075 total
    # export kWh at 0x004A; the SDM72D-M protocol V1.1 lists the same addresses). The meter
    # rejects requests of an odd register count; every read here is of whole float32 pairs.
    "eastron_sdm630": [
        _reg("power_w", 0x0034, "input", "float32", "W"),
        _reg("frequency_hz", 0x0046, "input", "float32", "Hz"),
        _reg("energy_import_kwh", 0x0048, "input", "float32", "kWh", kind="counter"),
        _reg("energy_export_kwh", 0x004A, "input", "float32", "kWh", kind="counter"),
    ],
    # Eastron SDM120 (-Modbus / -M), single-phase: float32 input registers, high word first.
    # Checked against the SDM120-M user manual register map as transcribed publicly (active
    # power W at 30013 = 0x000C) and Eastron's single-phase protocol table shared with the
    # SDM230 (30071 frequency 0x0046, 30073 import kWh 0x0048, 30075 export kWh 0x004A).
    "eastron_sdm120": [
        _reg("power_w", 0x000C, "input", "float32", "W"),
        _reg("frequency_hz", 0x0046, "input", "float32", "Hz"),
        _reg("energy_import_kwh", 0x0048, "input", "float32", "kWh", kind="counter"),
        _reg("energy_export_kwh", 0x004A, "input", "float32", "kWh", kind="counter"),
    ],
    # Schneider Electric PowerLogic PM5100 (PM5110/PM5111), holding registers (FC03), register
    # N at protocol address N - 1, high word first. From the PM5100/PM5300 Modbus register list
    # (Schneider FAQ FA234017): register 3060 "Active Power Total", float32 in kW (converted to
    # W here), and register 3204 "Active Energy Delivered (Into Load)", INT64 in Wh (converted
    # to kWh). Checked against a published PowerLogic protocol mapping (3060 FLOAT32 kW, 3204
    # INT64 Wh) and the PM3200 manual, where register 3204 is address 0x0C83, Int64 Wh.
    "schneider_pm5100": [
        _reg("power_w", 3059, "holding", "float32", "W", scale=1000.0),
        _reg(
            "energy_import_kwh",
            3203,
            "holding",
            "i64",
            "kWh",
            scale=0.001,
            kind="counter",
        ),
    ],
}
