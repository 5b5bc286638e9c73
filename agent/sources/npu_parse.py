"""Parsing of `npu-smi info` "key : value" output (Huawei Ascend), pure: text in, records out.

The formats followed, as Huawei's npu-smi reference prints them (hiascend.com, "npu-smi
命令参考", Atlas 200I A2 24.1.RC3 and 25.2.0 editions, HDK 26.1.0 A3 edition):
- `npu-smi info -l` (npusmi_012): "Card Count"/"Total Count", then per NPU "NPU ID",
  "Product Name", "Serial Number", "Chip Count";
- `npu-smi info -t board -i ID` (npusmi_008): "Product Name", "Model", "Manufacturer",
  "Serial Number", "Software Version", "Firmware Version", "Board ID", ...;
- `npu-smi info -t power -i ID` (npusmi_023): "NPU ID", "Chip Count", then per chip
  "Chip ID", "NPU Real-time Power(W)"; the card's "Power Dissipation(W)" in a block with
  "Chip Name : MCU" and no "Chip ID";
- `npu-smi info -t usages -i ID` (npusmi_019): per chip "Aicore Usage Rate(%)",
  "Memory Usage Rate(%)" (and "HBM Usage Rate(%)" where the chip has HBM);
- `npu-smi info -t health -i ID` (npusmi_027): per chip "Health" — OK, Warning, Alarm,
  Critical or UNKNOWN.
npu-smi prints "NA" for a field the product or deployment lacks; such a field is absent here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

# Keys that open a new record even without a blank line before them (the A3 edition prints
# `npu-smi info -l` without blank lines between NPUs).
_OPENERS = ("NPU ID", "Chip ID")
NOT_AVAILABLE = {"NA", "N/A", ""}

# "Health" words -> the code dcmi_get_device_health uses for the same states (DCMI API
# reference, api_024: 0 normal, 1 minor, 2 major, 3 critical alarm); UNKNOWN ("the device
# does not exist or has not started", npusmi_027) is 4 here.
HEALTH_CODES = {"OK": 0, "WARNING": 1, "ALARM": 2, "CRITICAL": 3, "UNKNOWN": 4}


class OutputError(ValueError):
    """npu-smi printed something this parser does not understand."""


def blocks(text: str) -> list[dict[str, str]]:
    """Split "key : value" lines into records: at blank lines and before an opener key.

    The first " : "-or-":" splits key from value; a line without a colon is ignored (banners,
    dashes). Values are stripped; keys keep their unit suffix, e.g. "Power Dissipation(W)".
    """
    out: list[dict[str, str]] = []
    current: dict[str, str] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line:
            if current:
                out.append(current)
                current = {}
            continue
        key, sep, value = line.partition(":")
        if not sep:
            continue
        key, value = key.strip(), value.strip()
        if key in _OPENERS and current and (key in current or any(k in current for k in _OPENERS)):
            out.append(current)
            current = {}
        current[key] = value
    if current:
        out.append(current)
    return out


def number(value: str | None) -> float | None:
    """A field's number; None for an absent field or one printed as NA.

    Raises OutputError for any other text: npu-smi then prints something undocumented.
    """
    if value is None or value.strip().upper() in NOT_AVAILABLE:
        return None
    try:
        return float(value)
    except ValueError:
        raise OutputError(f"{value!r} is not a number") from None


def integer(value: str, what: str) -> int:
    """An id field (NPU ID, Chip ID) as an int."""
    try:
        return int(value.strip())
    except ValueError:
        raise OutputError(f"{what} {value!r} is not a number") from None


@dataclass(frozen=True, slots=True)
class ListedNpu:
    """One entry of `npu-smi info -l`."""

    npu_id: int
    product: str | None
    serial: str | None
    chip_count: int | None


def listed_npus(text: str) -> list[ListedNpu]:
    """The NPUs `npu-smi info -l` lists, in its order."""
    out: list[ListedNpu] = []
    for block in blocks(text):
        if "NPU ID" not in block:
            continue
        count = block.get("Chip Count")
        out.append(ListedNpu(
            integer(block["NPU ID"], "NPU ID"),
            _text(block.get("Product Name")),
            _text(block.get("Serial Number")),
            None if count is None or count.upper() in NOT_AVAILABLE
            else integer(count, "Chip Count"),
        ))
    return out


def board(text: str) -> dict[str, str]:
    """The fields of `npu-smi info -t board -i ID` that are not NA, merged over its blocks."""
    merged: dict[str, str] = {}
    for block in blocks(text):
        for key, value in block.items():
            if _text(value) is not None:
                merged.setdefault(key, value)
    return merged


@dataclass(slots=True)
class ChipFields:
    """One NPU's answer to one `npu-smi info -t TYPE -i ID`: per chip and card-level fields."""

    chips: dict[int, dict[str, str]] = field(default_factory=dict)
    card: dict[str, str] = field(default_factory=dict)


def chip_fields(text: str) -> ChipFields:
    """Sort the blocks of a per-chip query: "Chip ID" blocks per chip, the header's and the
    MCU block's fields (no "Chip ID") card-level."""
    out = ChipFields()
    for block in blocks(text):
        if "Chip ID" in block:
            chip = integer(block["Chip ID"], "Chip ID")
            out.chips.setdefault(chip, {}).update(block)
        else:
            for key, value in block.items():
                out.card.setdefault(key, value)
    return out


def health_code(value: str | None) -> int | None:
    """The code of a "Health" word; None for NA; OutputError for an undocumented word."""
    if value is None or value.strip().upper() in NOT_AVAILABLE:
        return None
    code = HEALTH_CODES.get(value.strip().upper())
    if code is None:
        raise OutputError(
            f"health {value!r} is none of OK, Warning, Alarm, Critical, UNKNOWN"
        )
    return code


def _text(value: str | None) -> str | None:
    if value is None or value.strip().upper() in NOT_AVAILABLE:
        return None
    return value.strip()
