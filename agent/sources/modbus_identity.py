"""A Modbus meter's identity: its profile, and Read Device Identification where it answers.

Read Device Identification (function 43, MEI type 14, Modbus Application Protocol 1.1b3
§6.21) reads the meter's basic and regular objects in one request: VendorName (0x00),
ProductCode (0x01), MajorMinorRevision (0x02), ProductName (0x04), ModelName (0x05). Many
meters do not implement it: an exception, a malformed answer or no answer means no identity,
quietly (the meter's readings do not depend on it).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dcmeter.agent.samples import device_map
from dcmeter.agent.sources.modbus_transport import ModbusLink

READ_REGULAR = 0x02  # read code: basic and regular objects, as a stream from object 0
# object id -> `device` key; ProductName stands for the model where ModelName is missing.
OBJECTS: Mapping[int, str] = {0x00: "make", 0x01: "product_id", 0x02: "firmware",
                              0x04: "model", 0x05: "model"}


def identity_of(profile: str | None, objects: Mapping[int, Any]) -> dict[str, str]:
    """The `device` map of a meter: its profile and the objects it reported (bytes or str)."""
    values: dict[str, object] = {"profile": profile}
    for oid in sorted(OBJECTS):  # ModelName (0x05) after ProductName (0x04): it wins
        raw = objects.get(oid)
        if isinstance(raw, bytes):
            raw = raw.decode("utf-8", "replace")
        if isinstance(raw, str) and raw.strip():
            values[OBJECTS[oid]] = raw
    return device_map(**values)


async def read_identification(
    link: ModbusLink, device_id: int, timeout_s: float, retries: int
) -> dict[int, Any]:
    """The objects the meter reports (object id -> bytes), or {} where it reports none."""
    return await link.read_identification(device_id, READ_REGULAR, timeout_s, retries)
