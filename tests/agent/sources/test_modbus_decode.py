"""The meter's field decoders (struct, made once per request) against pymodbus's converter,
which the source used per value before: every type, both word orders, any register words."""

from __future__ import annotations

import math

from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.client import AsyncModbusTcpClient

from dcmeter.agent.sources.modbus import decoders
from dcmeter.agent.sources.modbus_profiles import WORDS, RegisterConfig
from dcmeter.agent.sources.modbus_transport import plan_requests

PYMODBUS_TYPES = {
    "u16": "UINT16", "i16": "INT16", "u32": "UINT32", "i32": "INT32",
    "u64": "UINT64", "i64": "INT64", "float32": "FLOAT32", "float64": "FLOAT64",
}


def reference(words: list[int], type_: str, order: str) -> float | int:
    raw = AsyncModbusTcpClient.convert_from_registers(
        words, data_type=AsyncModbusTcpClient.DATATYPE[PYMODBUS_TYPES[type_]],
        word_order=order,  # type: ignore[arg-type]
    )
    assert isinstance(raw, int | float)
    return raw


def same(a: float, b: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or a == b


@settings(max_examples=300, deadline=None)
@given(
    type_=st.sampled_from(sorted(PYMODBUS_TYPES)),
    order=st.sampled_from(["big", "little"]),
    words=st.lists(st.integers(0, 0xFFFF), min_size=4, max_size=4),
    lead=st.integers(0, 3),
)
def test_decoders_match_pymodbus(type_: str, order: str, words: list[int], lead: int) -> None:
    reg = RegisterConfig.model_validate(
        {"metric": "x", "address": 100 + lead, "type": type_, "word_order": order, "unit": "W"}
    )
    pads = [RegisterConfig.model_validate({"metric": f"pad{i}", "address": 100 + i,
                                           "type": "u16", "unit": "W"}) for i in range(lead)]
    (request,) = plan_requests([*pads, reg])  # one block: the value after `lead` words
    answer = [7] * lead + words[: WORDS[type_]]
    fields = {f.metric: f for f in decoders(request, {r.metric: 1.0 for r in [*pads, reg]})}
    assert [fields[p.metric].offset for p in pads] == list(range(lead))
    f = fields["x"]
    got = f.value.unpack(f.packed.pack(*(
        reversed(answer[f.offset: f.offset + f.words]) if f.little
        else answer[f.offset: f.offset + f.words]
    )))[0]
    assert same(got, reference(words[: WORDS[type_]], type_, order))
