"""The collector's decoder (wire.Decoder): what it remembers never lets a fault through.

The Decoder keeps each agent's checked source and metric tables with their msgpack bytes
and reuses them when a later batch's bytes are identical; it checks indexes and values with
numpy. Every body plain `decode_body` refuses it must refuse too, with the same fault,
whether or not it has seen a good batch of that agent before.
"""

from __future__ import annotations

import msgpack
import pytest
import test_wire
from hypothesis import given
from hypothesis import strategies as st
from test_wire import _body_with, make_batch

from dcmeter.agent import wire
from dcmeter.agent.samples import SourceInfo
from dcmeter.agent.wire import Batch

# The bodies tests/agent/test_wire.py shows plain decode_body refuses, with their faults.
MALFORMED = test_wire.test_malformed_bodies_are_refused_with_the_fault.pytestmark[0].args[1]


def _warm() -> wire.Decoder:
    """A decoder that has just decoded a good batch of agent-1 (its tables remembered)."""
    decoder = wire.Decoder()
    decoder(wire.encode_body(make_batch()))
    return decoder


@pytest.mark.parametrize(("changes", "message"), MALFORMED)
@pytest.mark.parametrize("warm", [False, True], ids=["fresh", "warm"])
def test_the_decoder_refuses_every_malformed_body_with_its_fault(
    changes: dict[str, object], message: str, warm: bool
) -> None:
    decoder = _warm() if warm else wire.Decoder()
    with pytest.raises(wire.WireError, match=message):
        decoder(_body_with(**changes))


def _plain(body: bytes) -> dict[str, object]:
    m: dict[str, object] = msgpack.unpackb(body, raw=False)
    return m


def test_a_table_equal_in_value_but_not_in_bytes_is_checked_again() -> None:
    # accuracy True == 1 and 1.0 in Python: a cache keyed by the decoded lists would take the
    # remembered, good table for this one. The bytes differ, so the decoder checks it again.
    decoder = wire.Decoder()
    good = _plain(wire.encode_body(make_batch()))
    good["sources"] = [["meter-total", "modbus", "a", {"point": "total"}, 1.0]]
    decoder(bytes(msgpack.packb(good, use_bin_type=True)))
    bad = dict(good, sources=[["meter-total", "modbus", "a", {"point": "total"}, True]],
               seq=2)
    assert bad["sources"] == good["sources"]  # equal as Python values
    with pytest.raises(wire.WireError, match="finite number"):
        decoder(bytes(msgpack.packb(bad, use_bin_type=True)))
    with pytest.raises(wire.WireError, match="finite number"):
        wire.decode_body(bytes(msgpack.packb(bad, use_bin_type=True)))


def test_a_changed_table_is_decoded_afresh_and_an_unchanged_one_reused() -> None:
    decoder = wire.Decoder()
    b = make_batch()
    first = decoder(wire.encode_body(b))
    again = decoder(wire.encode_body(make_batch(seq=2)))
    assert again.sources == first.sources and again.sources[0] is first.sources[0]
    device = {"model": "SDM630"}
    b.sources[0] = SourceInfo("meter-total", "modbus", "127.0.0.1:502/1", {"point": "total"},
                              0.005, device)
    b.seq = 3
    third = decoder(wire.encode_body(b))
    assert third.sources[0].device == device
    # The batch's list is its own: changing it leaves what the decoder remembers alone.
    third.sources.clear()
    assert decoder(wire.encode_body(b)).sources[0].device == device


def _pairs(*pairs: tuple[str, object]) -> bytes:
    """A msgpack map written pair by pair: a key may come twice, as a forger may send."""
    out = bytearray(b"\xde" + len(pairs).to_bytes(2, "big"))
    for k, v in pairs:
        out += msgpack.packb(k) + msgpack.packb(v, use_bin_type=True)
    return bytes(out)


def test_a_field_given_twice_keeps_its_last_value_as_msgpack_does() -> None:
    m = _plain(wire.encode_body(make_batch()))
    one = ["s1", "modbus", "a", {}, None]
    two = ["s2", "modbus", "a", {}, None]
    body = _pairs(*((k, v) for k, v in m.items() if k != "sources"),
                  ("sources", [one]), ("sources", [two]))
    assert msgpack.unpackb(body, raw=False)["sources"] == [two]
    for decode in (wire.decode_body, wire.Decoder()):
        assert [s.id for s in decode(body).sources] == ["s2"]


@pytest.mark.parametrize("body", [
    wire.encode_body(make_batch()) + b"\x00",  # something after the map
    wire.encode_body(make_batch())[:-5],  # cut short
    b"",
    bytes(msgpack.packb([1, 2])),
    _pairs(("v", 1)).replace(b"\xa1v", b"\x01", 1),  # an integer key
])
def test_broken_bodies_are_refused_by_both_decoders(body: bytes) -> None:
    for decode in (wire.decode_body, wire.Decoder()):
        with pytest.raises(wire.WireError):
            decode(body)


def test_the_decoder_forgets_the_oldest_agent_past_its_bound() -> None:
    decoder = wire.Decoder(max_agents=2)
    for agent in ("a1", "a2", "a3"):
        b = make_batch()
        b.agent = agent
        decoder(wire.encode_body(b))
    assert list(decoder._tables) == ["a2", "a3"]


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False), max_size=50),
       st.sampled_from([float("nan"), float("inf"), float("-inf"), None]))
def test_both_decoders_agree_on_any_values(values: list[float], bad: float | None) -> None:
    b: Batch = make_batch(0)
    vals = values + ([bad] if bad is not None else [])
    n = len(vals)
    b.ts, b.src, b.met, b.val = wire.pack_arrays([1] * n, [0] * n, [1] * n, vals)
    body = wire.encode_body(b)
    if bad is not None:
        for decode in (wire.decode_body, wire.Decoder()):
            with pytest.raises(wire.WireError, match="NaN or infinite"):
                decode(body)
        return
    assert list(wire.Decoder()(body).val) == list(wire.decode_body(body).val) == values


def test_the_agents_plain_decode_loads_no_numpy() -> None:
    # The agent decodes its own batches (buffer salvage, rotation) with plain decode_body;
    # numpy (tens of MB resident) is the collector's Decoder's alone.
    import subprocess
    import sys

    code = (
        "import sys\n"
        "from dcmeter.agent import wire\n"
        f"wire.decode_body({wire.encode_body(make_batch())!r})\n"
        "assert 'numpy' not in sys.modules, 'numpy loaded'\n"
        "wire.Decoder()\n"
        "assert 'numpy' in sys.modules\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
