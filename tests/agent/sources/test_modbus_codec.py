"""The agent's Modbus TCP codec against pymodbus's own socket framer: what the agent sends,
pymodbus reads as the request meant, and what pymodbus's server side encodes (registers,
exception answers, device identification), the agent reads back the same. Any bytes give
the codec's FrameError or an answer, nothing else."""

from __future__ import annotations

import contextlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pymodbus.framer import FramerSocket
from pymodbus.pdu import DecodePDU, ExceptionResponse
from pymodbus.pdu.mei_message import ReadDeviceInformationRequest, ReadDeviceInformationResponse
from pymodbus.pdu.register_message import (
    ReadHoldingRegistersRequest,
    ReadHoldingRegistersResponse,
    ReadInputRegistersRequest,
    ReadInputRegistersResponse,
)

from dcmeter.agent.sources import modbus_codec as codec


def server_reads(frame: bytes) -> object:
    """The request pymodbus's server side decodes from `frame`."""
    used, pdu = FramerSocket(DecodePDU(is_server=True)).handleFrame(frame, 0, 0)
    assert used == len(frame)
    return pdu


def server_answer(pdu: object) -> bytes:
    """The frame pymodbus's server side sends for the answer `pdu`."""
    return FramerSocket(DecodePDU(is_server=True)).buildFrame(pdu)  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None)
@given(tid=st.integers(0, 0xFFFF), unit=st.integers(0, 247), start=st.integers(0, 0xFFFF),
       count=st.integers(1, 125), function=st.sampled_from([3, 4]))
def test_pymodbus_reads_our_register_request(tid: int, unit: int, start: int, count: int,
                                             function: int) -> None:
    pdu = server_reads(codec.encode_read(tid, unit, function, start, count))
    kind = ReadHoldingRegistersRequest if function == 3 else ReadInputRegistersRequest
    assert isinstance(pdu, kind)
    assert (pdu.transaction_id, pdu.dev_id, pdu.address, pdu.count) == (tid, unit, start, count)


def test_pymodbus_reads_our_identification_request() -> None:
    pdu = server_reads(codec.encode_device_id(0x1234, 7, 2, 0))
    assert isinstance(pdu, ReadDeviceInformationRequest)
    assert (pdu.transaction_id, pdu.dev_id, pdu.read_code, pdu.object_id) == (0x1234, 7, 2, 0)


@settings(max_examples=200, deadline=None)
@given(tid=st.integers(0, 0xFFFF), unit=st.integers(0, 247),
       registers=st.lists(st.integers(0, 0xFFFF), min_size=0, max_size=125),
       function=st.sampled_from([3, 4]))
def test_we_read_pymodbus_register_answer(tid: int, unit: int, registers: list[int],
                                          function: int) -> None:
    kind = ReadHoldingRegistersResponse if function == 3 else ReadInputRegistersResponse
    frame = server_answer(kind(registers=registers, dev_id=unit, transaction_id=tid))
    assert codec.frame_size(frame) == len(frame)
    got_tid, got_unit, pdu = codec.split_frame(frame)
    assert (got_tid, got_unit) == (tid, unit)
    assert codec.decode_read(pdu, function) == (0, tuple(registers))


@pytest.mark.parametrize("function", [3, 4])
@pytest.mark.parametrize("code", [1, 2, 3, 4, 11])
def test_we_read_pymodbus_exception_answer(function: int, code: int) -> None:
    frame = server_answer(ExceptionResponse(function, code, device_id=3, transaction=9))
    assert frame[7:] == bytes([function | 0x80, code])  # by the spec: function + 0x80, code
    _, _, pdu = codec.split_frame(frame)
    assert codec.decode_read(pdu, function) == (code, ())
    # An exception to the other read function is not an answer to this one.
    with pytest.raises(codec.FrameError):
        codec.decode_read(pdu, 7 - function)


def test_we_read_pymodbus_identification_answer() -> None:
    objects = {0: b"Eastron", 1: b"SDM630", 2: b"1.07", 4: b"SDM630-Modbus"}
    answer = ReadDeviceInformationResponse(read_code=2, information=objects, dev_id=1,
                                           transaction_id=5)
    _, _, pdu = codec.split_frame(server_answer(answer))
    assert codec.decode_device_id(pdu) == (0, objects)
    _, _, pdu = codec.split_frame(server_answer(ExceptionResponse(0x2B, 1, device_id=1)))
    assert codec.decode_device_id(pdu) == (1, {})


def test_register_answer_by_hand() -> None:
    # tid 0x0102, protocol 0, length 7 (unit + 6 PDU bytes), unit 5, FC3, 4 bytes: 2 words.
    frame = bytes.fromhex("0102 0000 0007 05 03 04 00ea 8001")
    assert codec.split_frame(frame) == (0x0102, 5, bytes.fromhex("0304 00ea 8001"))
    assert codec.decode_read(frame[7:], 3) == (0, (234, 0x8001))
    assert codec.encode_read(0x0102, 5, 4, 0x34, 2) == bytes.fromhex("0102 0000 0006 05 04 0034 0002")


@pytest.mark.parametrize(("frame", "why"), [
    (bytes.fromhex("0001 0001 0005 01 03 02 0000"), "protocol id 1"),
    (bytes.fromhex("0001 0000 0001 01"), "length field 1"),
    (bytes.fromhex("0001 0000 00ff 01"), "length field 255"),
])
def test_garbage_header_is_a_frame_error(frame: bytes, why: str) -> None:
    with pytest.raises(codec.FrameError, match=why):
        codec.frame_size(frame)


@pytest.mark.parametrize(("pdu", "why"), [
    (bytes.fromhex("03 03 0000 00"), "byte count 3"),  # odd byte count
    (bytes.fromhex("03 04 0000"), "byte count 4 with 2"),  # short: fewer bytes than counted
    (bytes.fromhex("03 02 0000 00"), "byte count 2 with 3"),  # a byte too many
    (bytes.fromhex("06 02 0000"), "function 6"),
    (bytes.fromhex("83"), "exception answer of 1 bytes"),
    (b"", "function"),
])
def test_bad_register_answer_is_a_frame_error(pdu: bytes, why: str) -> None:
    with pytest.raises(codec.FrameError, match=why):
        codec.decode_read(pdu, 3)


def test_short_frame_waits_and_a_cut_frame_is_an_error() -> None:
    frame = codec.encode_read(1, 1, 3, 0, 2)
    assert codec.frame_size(frame[:6]) == 0  # header incomplete: wait for more
    assert codec.frame_size(frame[:8]) == len(frame)  # header whole: its size is known
    with pytest.raises(codec.FrameError):
        codec.split_frame(frame[:-1])
    with pytest.raises(codec.FrameError):  # objects running past the answer
        codec.decode_device_id(bytes.fromhex("2b 0e 02 01 00 00 01 00 05 41"))


@settings(max_examples=2000, deadline=None)
@given(data=st.binary(max_size=300), function=st.sampled_from([3, 4]))
def test_any_bytes_give_an_answer_or_a_frame_error(data: bytes, function: int) -> None:
    for decode in (lambda: codec.frame_size(data), lambda: codec.split_frame(data),
                   lambda: codec.decode_read(data, function),
                   lambda: codec.decode_device_id(data)):
        with contextlib.suppress(codec.FrameError):
            decode()
