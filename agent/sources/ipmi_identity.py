"""A BMC's identity: IPMI Get Device ID (IPMI v2.0 §20.1), once per session.

One request: device id, device revision, firmware revision, IANA manufacturer id and product
id. A BMC that refuses it, or answers garbage, has no identity (quietly: its power readings
do not depend on it).
"""

from __future__ import annotations

from typing import Any

from dcmeter.agent.samples import device_map


def device_identity(ipmi: Any) -> dict[str, str]:
    """The `device` map of the BMC behind `ipmi` (a pyipmi Ipmi), or {} where it refuses."""
    try:
        dev = ipmi.get_device_id()
    except Exception:  # pyipmi raises its own and transport errors alike; none is fatal here
        return {}
    return device_map(
        device_id=_int(getattr(dev, "device_id", None)),
        firmware=_firmware(getattr(dev, "fw_revision", None)),
        manufacturer_id=_int(getattr(dev, "manufacturer_id", None)),
        product_id=_int(getattr(dev, "product_id", None)),
        revision=_int(getattr(dev, "revision", None)),
    )


def _firmware(version: object) -> str | None:
    """Major.minor as IPMI writes it (§20.1: the minor revision is two BCD digits) and as
    `ipmitool mc info` prints it: 9.08, not pyipmi's str() "9.8" (which reads as 9.80)."""
    major, minor = getattr(version, "major", None), getattr(version, "minor", None)
    if not isinstance(major, int) or isinstance(major, bool):
        return None
    if not isinstance(minor, int) or isinstance(minor, bool) or not 0 <= minor <= 99:
        return str(major)  # minor 0xFF or missing: no minor revision to show
    return f"{major}.{minor:02d}"


def _int(value: object) -> str | None:
    return str(value) if isinstance(value, int) and not isinstance(value, bool) else None
