"""The BER subset SNMP messages need: TLVs, INTEGERs and the application types, OIDs.

Encoders return whole TLVs; decoders work on (buffer, position, end) without copying and raise
ValueError on anything malformed, so a caller drops a bad datagram with one `except`.
"""

from __future__ import annotations

# BER tags (RFC 3416 / RFC 2578), PDU types and error-status values.
INT, OCTETS, OID, SEQ = 0x02, 0x04, 0x06, 0x30
COUNTER32, GAUGE32, TIMETICKS, COUNTER64 = 0x41, 0x42, 0x43, 0x46
NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB = b"\x80\x00", b"\x81\x00", b"\x82\x00"
GET, GETNEXT, RESPONSE, SET, GETBULK, REPORT = 0xA0, 0xA1, 0xA2, 0xA3, 0xA5, 0xA8
TOO_BIG, GEN_ERR, NO_ACCESS = 1, 5, 6
MAX_MSG = 65507  # largest UDP payload over IPv4


def _length(n: int) -> bytes:
    """A definite length, short form below 128."""
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def tlv(tag: int, content: bytes) -> bytes:
    """One tag-length-value."""
    return bytes((tag,)) + _length(len(content)) + content


def int_tlv(value: int, tag: int = INT) -> bytes:
    """Minimal two's-complement encoding; unsigned application types use it too."""
    size = ((value if value >= 0 else ~value).bit_length() + 8) // 8
    return tlv(tag, value.to_bytes(size, "big", signed=True))


def oid_tlv(oid: tuple[int, ...]) -> bytes:
    """An OBJECT IDENTIFIER, arcs in base-128."""
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return tlv(OID, bytes(out))


def read_tlv(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """The TLV at `pos`: (tag, content start, content end); ValueError if malformed."""
    if pos + 2 > end:
        raise ValueError("truncated")
    tag, size = buf[pos], buf[pos + 1]
    pos += 2
    if size & 0x80:
        k = size & 0x7F
        if not 0 < k <= 4 or pos + k > end:
            raise ValueError("bad length")
        size = int.from_bytes(buf[pos : pos + k], "big")
        pos += k
    if pos + size > end:
        raise ValueError("truncated")
    return tag, pos, pos + size


def expect(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    """The content (start, end) of the TLV at `pos`; ValueError unless it has `tag`."""
    found, start, stop = read_tlv(buf, pos, end)
    if found != tag:
        raise ValueError(f"tag {found:#x}, expected {tag:#x}")
    return start, stop


def get_int(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """An INTEGER at `pos`: (value, end of its TLV)."""
    start, stop = expect(buf, pos, end, INT)
    return int.from_bytes(buf[start:stop], "big", signed=True), stop


def decode_oid(raw: bytes) -> tuple[int, ...]:
    """The arcs of an OBJECT IDENTIFIER's content octets."""
    arcs: list[int] = []
    value = 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs:
        raise ValueError("empty OID")
    first = arcs[0]
    head = (first // 40, first % 40) if first < 80 else (2, first - 80)
    return (*head, *arcs[1:])
