"""Modbus TCP frames: the few the agent sends and the answers it reads (no pymodbus).

A Modbus TCP frame (Modbus Messaging on TCP/IP Implementation Guide v1.0b, §3.1.3) is the
7-byte MBAP header (transaction id, protocol id 0, length of what follows, unit id) and the
PDU (Modbus Application Protocol v1.1b3). The agent sends three PDUs: read holding registers
(function 3), read input registers (4), and Read Device Identification (43/14); a server
answers each with the same function and its data, or with the function + 0x80 and an
exception code. Everything here is pure; a malformed frame raises FrameError, nothing else.
"""

from __future__ import annotations

import struct

READ_HOLDING = 3
READ_INPUT = 4
ENCAPSULATED = 0x2B  # function 43
MEI_DEVICE_ID = 0x0E  # MEI type 14: Read Device Identification
ERROR_BIT = 0x80

HEADER = struct.Struct(">HHHB")  # transaction id, protocol id, length, unit id
MBAP_BYTES = 7
# The length field counts the unit id and the PDU: a PDU is 1..253 bytes (ADU <= 260).
MAX_LENGTH = 254

_READ = struct.Struct(">HHHBBHH")
_DEVICE_ID = struct.Struct(">HHHBBBBB")


class FrameError(ValueError):
    """Bytes that are not the answer they should be (the message says how)."""


def encode_read(tid: int, unit: int, function: int, start: int, count: int) -> bytes:
    """A read holding (3) or input (4) registers request: `count` words from `start`."""
    return _READ.pack(tid, 0, 6, unit, function, start, count)


def encode_device_id(tid: int, unit: int, read_code: int, object_id: int) -> bytes:
    """A Read Device Identification request (43/14) from `object_id` with `read_code`."""
    return _DEVICE_ID.pack(tid, 0, 5, unit, ENCAPSULATED, MEI_DEVICE_ID, read_code, object_id)


def frame_size(data: bytes | bytearray) -> int:
    """Bytes of the frame at the start of `data` (header and PDU), 0 while its header is
    incomplete; FrameError when the header cannot start a Modbus TCP frame (the stream is
    lost: nothing after it can be framed)."""
    if len(data) < MBAP_BYTES:
        return 0
    protocol: int
    length: int
    _, protocol, length, _ = HEADER.unpack_from(data)
    if protocol != 0:
        raise FrameError(f"protocol id {protocol}, not 0 (Modbus)")
    if not 2 <= length <= MAX_LENGTH:
        raise FrameError(f"length field {length}, not 2..{MAX_LENGTH}")
    return 6 + length


def split_frame(frame: bytes | bytearray) -> tuple[int, int, bytes]:
    """(transaction id, unit id, PDU) of one whole frame."""
    size = frame_size(frame)
    if size == 0 or len(frame) != size:
        raise FrameError(f"{len(frame)} bytes, not one whole frame")
    tid, _, _, unit = HEADER.unpack_from(frame)
    return tid, unit, bytes(frame[MBAP_BYTES:])


def exception_code(pdu: bytes, function: int) -> int:
    """The exception code of an exception answer to `function`, 0 for any other PDU."""
    if pdu and pdu[0] == function | ERROR_BIT:
        if len(pdu) != 2:
            raise FrameError(f"exception answer of {len(pdu)} bytes, not 2")
        return pdu[1]
    return 0


def decode_read(pdu: bytes, function: int) -> tuple[int, tuple[int, ...]]:
    """(exception code, ()) or (0, the registers) of an answer to a function 3 or 4 read.

    A server may answer fewer registers than asked (the caller compares the count)."""
    code = exception_code(pdu, function)
    if code:
        return code, ()
    if len(pdu) < 2 or pdu[0] != function:
        raise FrameError(f"function {pdu[0] if pdu else '(none)'} in answer to {function}")
    size = pdu[1]
    if size % 2 or len(pdu) != 2 + size:
        raise FrameError(f"byte count {size} with {len(pdu) - 2} data bytes")
    return 0, struct.unpack_from(f">{size // 2}H", pdu, 2)


def decode_device_id(pdu: bytes) -> tuple[int, dict[int, bytes]]:
    """(exception code, {}) or (0, object id -> value) of a Read Device Identification
    answer (one answer: objects that did not fit in it are not asked for)."""
    code = exception_code(pdu, ENCAPSULATED)
    if code:
        return code, {}
    if len(pdu) < 7 or pdu[0] != ENCAPSULATED or pdu[1] != MEI_DEVICE_ID:
        raise FrameError("not a Read Device Identification answer")
    count, at = pdu[6], 7
    objects: dict[int, bytes] = {}
    for _ in range(count):
        if at + 2 > len(pdu) or at + 2 + pdu[at + 1] > len(pdu):
            raise FrameError(f"object {len(objects) + 1} of {count} runs past the answer")
        size = pdu[at + 1]
        objects[pdu[at]] = pdu[at + 2 : at + 2 + size]
        at += 2 + size
    if at != len(pdu):
        raise FrameError(f"{len(pdu) - at} bytes after the last object")
    return 0, objects


__all__ = ["FrameError", "decode_device_id", "decode_read", "encode_device_id", "encode_read",
           "exception_code", "frame_size", "split_frame"]
