"""SNMP v2c messages, encoded and decoded by hand: GET and GETBULK requests, their responses.

The subset of BER (X.690) that RFC 3416 messages use, no more: definite lengths, INTEGER,
OCTET STRING, NULL, OBJECT IDENTIFIER, SEQUENCE, the application types of RFC 2578 and the
v2 exceptions. pysnmp spends ~2 ms of CPU per switch and read (40 % in pyasn1's generic
decoder); this module encodes a request in a few µs and decodes an 11-value answer in
~20 µs (bench/snmp_clients.py). v3 (USM) stays on pysnmp (snmp_client.py).

Decoding raises ValueError on anything malformed, so a caller drops a bad datagram with one
`except`. Values come back as snmp_client's did through pysnmp: int for the integer types,
str for OCTET STRING (UTF-8, NULs stripped) and OBJECT IDENTIFIER, None for noSuchObject,
noSuchInstance, endOfMibView and NULL.
"""

from __future__ import annotations

import functools

from dcmeter.agent.sources.snmp_oids import Value

# BER tags (X.690, RFC 2578 application types, RFC 3416 PDUs and exceptions).
INT, OCTETS, NULL, OID, SEQ = 0x02, 0x04, 0x05, 0x06, 0x30
IP_ADDRESS, COUNTER32, GAUGE32, TIMETICKS, OPAQUE, COUNTER64 = 0x40, 0x41, 0x42, 0x43, 0x44, 0x46
NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW = 0x80, 0x81, 0x82
GET, GETBULK, RESPONSE = 0xA0, 0xA5, 0xA2
_UNSIGNED = frozenset((COUNTER32, GAUGE32, TIMETICKS, COUNTER64))
_EXCEPTIONS = frozenset((NULL, NO_SUCH_OBJECT, NO_SUCH_INSTANCE, END_OF_MIB_VIEW))
_V2C = b"\x02\x01\x01"  # version INTEGER 1: SNMPv2c

# error-status values, RFC 3416 section 3 (the names pysnmp's prettyPrint gave).
STATUS_NAMES = (
    "", "tooBig", "noSuchName", "badValue", "readOnly", "genErr", "noAccess", "wrongType",
    "wrongLength", "wrongEncoding", "wrongValue", "noCreation", "inconsistentValue",
    "resourceUnavailable", "commitFailed", "undoFailed", "authorizationError", "notWritable",
    "inconsistentName",
)

# OID content octets -> dotted text, for the names answers carry (a switch's GETs repeat the
# same few dozen; a walk adds its rows). Emptied when full rather than kept in LRU order.
_NAMES: dict[bytes, str] = {}
_NAMES_MAX = 65536
# RFC 2578 section 3.5: at most 128 sub-identifiers, each at most 2^32 - 1 (5 octets in BER;
# the first, which packs two arcs, may reach 2^32 - 1 + 80).
_ARC_MAX = 2**32 - 1
_OID_MAX_OCTETS = 128 * 5


def _length(n: int) -> bytes:
    """A definite length: short form below 128, else long form."""
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def tlv(tag: int, content: bytes) -> bytes:
    """One tag-length-value."""
    return bytes((tag,)) + _length(len(content)) + content


def int_tlv(value: int) -> bytes:
    """An INTEGER, minimal two's complement."""
    size = ((value if value >= 0 else ~value).bit_length() + 8) // 8
    return tlv(INT, value.to_bytes(size, "big", signed=True))


def oid_content(oid: str) -> bytes:
    """The content octets of a dotted OBJECT IDENTIFIER ("1.3.6.1..."); ValueError if bad."""
    arcs = [int(a) for a in oid.split(".")]
    if len(arcs) < 2 or arcs[0] > 2 or (arcs[0] < 2 and arcs[1] > 39) or min(arcs) < 0:
        raise ValueError(f"not an OID: {oid!r}")
    out = bytearray()
    for arc in (arcs[0] * 40 + arcs[1], *arcs[2:]):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return bytes(out)


def oid_text(raw: bytes) -> str:
    """The dotted text of an OBJECT IDENTIFIER's content octets; ValueError if malformed."""
    name = _NAMES.get(raw)
    if name is not None:
        return name
    if len(raw) > _OID_MAX_OCTETS:  # a forged answer must not cost a long loop or the cache
        raise ValueError("OID too long")
    arcs: list[int] = []
    value = 0
    for byte in raw:
        value = (value << 7) | (byte & 0x7F)
        if not byte & 0x80:
            arcs.append(value)
            value = 0
    if not arcs or raw[-1] & 0x80 or arcs[0] > _ARC_MAX + 80 or max(arcs[1:], default=0) > _ARC_MAX:
        raise ValueError("bad OID")
    first = arcs[0]
    head = [first // 40, first % 40] if first < 80 else [2, first - 80]
    name = ".".join(map(str, head + arcs[1:]))
    if len(_NAMES) >= _NAMES_MAX:
        _NAMES.clear()
    _NAMES[raw] = name
    return name


@functools.lru_cache(maxsize=4096)
def _var_binds(oids: tuple[str, ...]) -> bytes:
    """The request's var-bind list (each OID with a NULL), made once per list of OIDs."""
    return tlv(SEQ, b"".join(tlv(SEQ, tlv(OID, oid_content(o)) + b"\x05\x00") for o in oids))


def encode_request(
    community: bytes, request_id: int, oids: tuple[str, ...], max_repetitions: int = 0
) -> bytes:
    """A v2c GET, or a GETBULK (non-repeaters 0) when `max_repetitions` > 0."""
    if max_repetitions:
        head = int_tlv(request_id) + b"\x02\x01\x00" + int_tlv(max_repetitions)
        pdu = tlv(GETBULK, head + _var_binds(oids))
    else:
        pdu = tlv(GET, int_tlv(request_id) + b"\x02\x01\x00\x02\x01\x00" + _var_binds(oids))
    return tlv(SEQ, _V2C + tlv(OCTETS, community) + pdu)


def _tlv_at(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
    """The TLV at `pos`: (tag, content start, content end); ValueError if it overruns."""
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


def _int_at(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """The INTEGER at `pos`: (value, end of its TLV)."""
    tag, start, stop = _tlv_at(buf, pos, end)
    if tag != INT or start == stop:
        raise ValueError("expected an INTEGER")
    return int.from_bytes(buf[start:stop], "big", signed=True), stop


def response_id(data: bytes) -> int:
    """The request-id of a v2c message, read without decoding the rest; ValueError if bad."""
    end = len(data)
    tag, pos, end = _tlv_at(data, 0, end)
    if tag != SEQ:
        raise ValueError("not a SEQUENCE")
    _, pos = _int_at(data, pos, end)  # version
    _, _, pos = _tlv_at(data, pos, end)  # community
    _, pos, end = _tlv_at(data, pos, end)  # the PDU
    return _int_at(data, pos, end)[0]


def decode_response(
    data: bytes, community: bytes
) -> tuple[int, str, list[tuple[str, Value]]]:
    """A v2c Response: (request-id, error-status name or "", var-binds as (oid, value)).

    ValueError if it is malformed, not v2c, not a Response or for another community.
    """
    tag, pos, end = _tlv_at(data, 0, len(data))
    if tag != SEQ:
        raise ValueError("not a SEQUENCE")
    version, pos = _int_at(data, pos, end)
    tag, start, pos = _tlv_at(data, pos, end)
    if version != 1 or tag != OCTETS or data[start:pos] != community:
        raise ValueError("not a v2c message of this community")
    tag, pos, end = _tlv_at(data, pos, end)
    if tag != RESPONSE:
        raise ValueError(f"PDU type {tag:#x}, not a Response")
    request_id, pos = _int_at(data, pos, end)
    status, pos = _int_at(data, pos, end)
    _, pos = _int_at(data, pos, end)  # error-index
    tag, pos, end = _tlv_at(data, pos, end)
    if tag != SEQ:
        raise ValueError("no var-bind list")
    answered: list[tuple[str, Value]] = []
    while pos < end:
        tag, pos, stop = _tlv_at(data, pos, end)
        if tag != SEQ:
            raise ValueError("bad var-bind")
        tag, start, pos = _tlv_at(data, pos, stop)
        if tag != OID:
            raise ValueError("var-bind without an OID")
        name = oid_text(data[start:pos])
        tag, start, pos = _tlv_at(data, pos, stop)
        answered.append((name, _value(tag, data[start:pos])))
        pos = stop
    name = STATUS_NAMES[status] if 0 <= status < len(STATUS_NAMES) else f"status {status}"
    return request_id, name, answered


def _value(tag: int, raw: bytes) -> Value:
    """A var-bind's value as int, str or None (see the module docstring)."""
    if tag in _UNSIGNED:
        return int.from_bytes(raw, "big")
    if tag == INT:
        return int.from_bytes(raw, "big", signed=True)
    if tag in (OCTETS, IP_ADDRESS, OPAQUE):
        return raw.decode("utf-8", "replace").rstrip("\x00")
    if tag in _EXCEPTIONS:
        return None
    if tag == OID:
        return oid_text(raw)
    raise ValueError(f"unknown value type {tag:#x}")
