"""The agent's own v2c codec and socket (snmp_codec.py, snmp_v2c.py).

The codec is checked against pysnmp's (pyasn1's BER), an implementation of its own: what we
encode pysnmp decodes to the same request, and what pysnmp encodes we decode to the values
pysnmp put in. The socket is checked against a scripted peer on a real UDP socket whose
answers pysnmp encodes: late answers, strangers, garbage, silence. Reads against snmpd and
the simulator are in test_snmp.py and test_snmp_simulated.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import Callable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyasn1.codec.ber import decoder, encoder
from pysnmp.proto import rfc1905
from pysnmp.proto.api import v2c

from dcmeter.agent.sources import TargetUnreachable, snmp_v2c
from dcmeter.agent.sources.snmp_client import SnmpClient
from dcmeter.agent.sources.snmp_codec import decode_response, encode_request, response_id
from dcmeter.agent.sources.snmp_config import SnmpSettings

UPTIME = "1.3.6.1.2.1.1.3.0"
HC_IN_1 = "1.3.6.1.2.1.31.1.1.1.6.1"


def response(request_id: int, binds: list[tuple[str, Any]], community: bytes = b"public",
             status: int = 0) -> bytes:
    """A v2c Response encoded by pysnmp."""
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, community)
    pdu = v2c.ResponsePDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, request_id)
    v2c.apiPDU.set_error_status(pdu, status)
    v2c.apiPDU.set_varbinds(pdu, [(tuple(int(a) for a in o.split(".")), v) for o, v in binds])
    v2c.apiMessage.set_pdu(msg, pdu)
    return bytes(encoder.encode(msg))


def test_pysnmp_decodes_our_get_and_getbulk() -> None:
    oids = (UPTIME, HC_IN_1, "1.3.6.1.4.1.2636.3.1.13.1.5.9.1.0.0")  # a multi-byte arc
    for repetitions, kind in ((0, "GetRequestPDU"), (20, "GetBulkRequestPDU")):
        message, _ = decoder.decode(
            encode_request(b"c0mmun1ty", 2**31 - 1, oids, repetitions), asn1Spec=v2c.Message()
        )
        assert bytes(v2c.apiMessage.get_community(message)) == b"c0mmun1ty"
        pdu = v2c.apiMessage.get_pdu(message)
        assert type(pdu).__name__ == kind
        assert v2c.apiPDU.get_request_id(pdu) == 2**31 - 1
        assert [str(o) for o, _ in v2c.apiPDU.get_varbinds(pdu)] == list(oids)
        if repetitions:
            assert v2c.apiBulkPDU.get_non_repeaters(pdu) == 0
            assert v2c.apiBulkPDU.get_max_repetitions(pdu) == 20


def test_we_decode_what_pysnmp_encodes() -> None:
    binds = [
        (UPTIME, v2c.TimeTicks(2**32 - 1)),  # unsigned: BER needs a leading zero octet
        (HC_IN_1, v2c.Counter64(2**64 - 1)),
        ("1.3.6.1.2.1.2.2.1.10.1", v2c.Counter32(2**31)),
        ("1.3.6.1.2.1.31.1.1.1.15.1", v2c.Gauge32(100_000)),
        ("1.3.6.1.2.1.25.3.3.1.2.1", v2c.Integer(-5)),
        ("1.3.6.1.2.1.31.1.1.1.1.1", v2c.OctetString(b"Eth1/1\x00")),
        ("1.3.6.1.2.1.1.2.0", v2c.ObjectIdentifier((1, 3, 6, 1, 4, 1, 8072, 3, 2, 10))),
        ("1.3.6.1.2.1.31.1.1.1.6.2", rfc1905.noSuchInstance),
        ("1.3.6.1.2.1.31.1.1.1.6.3", rfc1905.noSuchObject),
        ("1.3.6.1.2.1.31.1.1.1.6.4", rfc1905.endOfMibView),
    ]
    request_id, status, answered = decode_response(response(123456, binds), b"public")
    assert (request_id, status) == (123456, "")
    assert answered == [
        (UPTIME, 4294967295),
        (HC_IN_1, 18446744073709551615),
        ("1.3.6.1.2.1.2.2.1.10.1", 2147483648),
        ("1.3.6.1.2.1.31.1.1.1.15.1", 100000),
        ("1.3.6.1.2.1.25.3.3.1.2.1", -5),
        ("1.3.6.1.2.1.31.1.1.1.1.1", "Eth1/1"),
        ("1.3.6.1.2.1.1.2.0", "1.3.6.1.4.1.8072.3.2.10"),
        ("1.3.6.1.2.1.31.1.1.1.6.2", None),
        ("1.3.6.1.2.1.31.1.1.1.6.3", None),
        ("1.3.6.1.2.1.31.1.1.1.6.4", None),
    ]
    _, status, _ = decode_response(response(1, [(UPTIME, v2c.Null())], status=16), b"public")
    assert status == "authorizationError"


@pytest.mark.parametrize("data", [
    b"", b"\x30", b"\x30\x84\xff\xff\xff\xff", b"junk" * 10,
    response(1, [(UPTIME, v2c.TimeTicks(5))])[:-1],  # truncated
    response(1, [(UPTIME, v2c.TimeTicks(5))], community=b"private"),  # another community
])
def test_malformed_or_foreign_answers_raise_value_error(data: bytes) -> None:
    with pytest.raises(ValueError):
        decode_response(data, b"public")


def test_an_oid_beyond_rfc_2578_is_refused_before_it_costs() -> None:
    # A sub-identifier above 2^32 - 1, and 4,000 octets of one endless arc (would be a
    # quadratic loop and a 4 KB cache key per forged datagram).
    big = response(1, [(UPTIME + ".4294967296", v2c.Null())])
    with pytest.raises(ValueError):
        decode_response(big, b"public")
    assert decode_response(response(1, [(UPTIME + ".4294967295", v2c.Null())]), b"public")[2] \
        == [(UPTIME + ".4294967295", None)]
    endless = b"\x30\x82\x0f\xb3\x02\x01\x01\x04\x06public\xa2\x82\x0f\xa4\x02\x01\x01" \
        b"\x02\x01\x00\x02\x01\x00\x30\x82\x0f\x99\x30\x82\x0f\x95\x06\x82\x0f\xa1" \
        + b"\xff" * 3999 + b"\x01\x05\x00"
    with pytest.raises(ValueError):
        decode_response(endless, b"public")


VALID = response(77, [(UPTIME, v2c.TimeTicks(5)), (HC_IN_1, v2c.Counter64(2**40))])


@settings(max_examples=400, deadline=None)
@given(st.one_of(
    st.binary(max_size=300),
    st.tuples(st.integers(0, len(VALID) - 1), st.integers(0, 255)).map(
        lambda at: VALID[:at[0]] + bytes((at[1],)) + VALID[at[0] + 1:]),  # one octet changed
    st.integers(0, len(VALID)).map(lambda n: VALID[:n]),  # cut short
))
def test_any_datagram_decodes_or_raises_value_error_only(data: bytes) -> None:
    # What a socket may receive from anyone: the socket drops on ValueError and nothing else.
    for decode in (response_id, lambda d: decode_response(d, b"public")):
        with contextlib.suppress(ValueError):
            decode(data)


class Peer(asyncio.DatagramProtocol):
    """A scripted agent: `script(request_id, send)` decides what to send back, and when."""

    def __init__(self, script: Callable[[int, Callable[[bytes], None]], None]) -> None:
        self.script = script
        self.requests = 0
        self.transport: Any = None

    def connection_made(self, transport: Any) -> None:
        self.transport = transport

    def datagram_received(self, data: bytes, addr: Any) -> None:
        message, _ = decoder.decode(data, asn1Spec=v2c.Message())
        request_id = int(v2c.apiPDU.get_request_id(v2c.apiMessage.get_pdu(message)))
        self.requests += 1
        self.script(request_id, lambda reply: self.transport.sendto(reply, addr))


async def serve(script: Callable[[int, Callable[[bytes], None]], None]) -> tuple[Peer, int]:
    """Start a scripted peer on 127.0.0.1; (the peer, its port)."""
    loop = asyncio.get_running_loop()
    transport, peer = await loop.create_datagram_endpoint(
        lambda: Peer(script), local_addr=("127.0.0.1", 0)
    )
    return peer, transport.get_extra_info("sockname")[1]


def client(port: int, attempt_s: float, retries: int) -> SnmpClient:
    config = SnmpSettings.model_validate({
        "type": "snmp", "id": "sw", "host": "127.0.0.1", "port": port, "community": "public",
        "retries": retries, "role": "storage",
    })
    return SnmpClient(config, f"127.0.0.1:{port}", attempt_s, lambda: 0)


def test_a_late_answer_to_the_first_attempt_is_taken_during_the_retry() -> None:
    # The peer answers only the first attempt, 1.5 s late: after the first attempt's 1 s,
    # within the second's. A retry with a new request-id would have dropped it.
    async def body() -> None:
        loop = asyncio.get_running_loop()

        def script(request_id: int, send: Callable[[bytes], None]) -> None:
            if peer.requests == 1:
                reply = response(request_id, [(UPTIME, v2c.TimeTicks(42))])
                loop.call_later(1.5, send, reply)

        peer, port = await serve(script)
        c = client(port, attempt_s=1.0, retries=1)
        try:
            assert await c.get([UPTIME]) == {UPTIME: 42}
        finally:
            c.close()
        assert peer.requests == 2

    asyncio.run(body())


def test_garbage_strangers_and_other_communities_are_ignored() -> None:
    # Before the true answer, the peer sends garbage, an answer of another community and one
    # from another port with the right request-id: the request goes on waiting through them
    # (retries = 0: a wasted attempt would fail the read).
    async def body() -> None:
        loop = asyncio.get_running_loop()
        stranger, _ = await loop.create_datagram_endpoint(
            asyncio.DatagramProtocol, local_addr=("127.0.0.1", 0)
        )

        def script(request_id: int, send: Callable[[bytes], None]) -> None:
            send(b"\x30\x03junk")
            send(response(request_id, [(UPTIME, v2c.TimeTicks(1))], community=b"private"))
            stranger.sendto(response(request_id, [(UPTIME, v2c.TimeTicks(2))]), ours)
            loop.call_later(0.2, send, response(request_id, [(UPTIME, v2c.TimeTicks(3))]))

        peer, port = await serve(script)
        c = client(port, attempt_s=10.0, retries=0)
        try:
            await c._connect()
            ours = c._engine.opening.result().transport.get_extra_info("sockname")
            assert await c.get([UPTIME]) == {UPTIME: 3}
        finally:
            c.close()
            stranger.close()
        assert peer.requests == 1

    asyncio.run(body())


def test_silence_is_target_unreachable_after_every_attempt_and_leaves_nothing_pending() -> None:
    async def body() -> None:
        peer, port = await serve(lambda _id, _send: None)
        c = client(port, attempt_s=0.2, retries=2)
        try:
            with pytest.raises(TargetUnreachable, match=r"no answer to 3 requests of 0\.2 s"):
                await c.get([UPTIME])
            assert peer.requests == 3
            # A read cancelled by the poller's timeout leaves nothing behind either.
            with pytest.raises(TimeoutError):
                await asyncio.wait_for(c.get([UPTIME]), 0.1)
            assert c._engine.opening.result().pending == {}
            assert snmp_v2c.SOCKETS.users() == 1
        finally:
            c.close()
        assert snmp_v2c.SOCKETS.users() == 0

    asyncio.run(body())


def test_a_v2c_read_imports_no_pysnmp() -> None:
    # v2c needs nothing of pysnmp (~20 MB of RSS, 0.1 s of CPU to import): only v3 loads it.
    script = """
import asyncio, sys
from dcmeter.agent.sources.snmp import SnmpConfig
from dcmeter.sim.snmp import SimInterface, SimSnmpAgent

async def main():
    agent = SimSnmpAgent(interfaces=[SimInterface(index=1, name="Eth1/1", speed_mbps=10_000,
                                                  in_octets=lambda t: 7, out_octets=lambda t: 9)])
    port = await agent.start()
    source = SnmpConfig.model_validate({"type": "snmp", "id": "sw", "host": "127.0.0.1",
        "port": port, "community": "public", "interfaces": {"if_indexes": [1]}}).build()
    readings = await source.read()
    await source.close()
    await agent.stop()
    print(sorted(r.value for r in readings if r.metric.name.endswith("_octets")))
    print(sorted(m for m in sys.modules if m.split(".")[0] in ("pysnmp", "pyasn1")))

asyncio.run(main())
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120, check=True)
    assert done.stdout.splitlines() == ["[7.0, 9.0]", "[]"]
