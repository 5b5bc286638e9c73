"""Wire formats and session crypto of IPMI over LAN, from the managed system's side.

RMCP and ASF presence ping/pong, the IPMI v1.5 session wrapper (session-less only), the
RMCP+ session header and trailer of IPMI v2.0 (§13.6, §13.28), RAKP message codes (§13.31)
and the session keys of §13.32, and the IPMB-style LAN message with its checksums (§13.8).

Keying material: K1 = HMAC_SIK(0x01 × 20) and K2 = HMAC_SIK(0x02 × 20) for every
authentication algorithm, SHA-256 included. This is what ipmitool (lanplus_crypt.c),
FreeIPMI (IPMI_KEY_CONSTANT_LENGTH) and OpenBMC's netipmid (rmcp::const_1) use.
python-ipmi 0.6.1 pads the constant to the digest size instead, so its suites 15-17 (SHA-256)
do not interoperate with real BMCs, nor with this simulator, once the session is active.
"""

from __future__ import annotations

import hmac
import os
import struct
from dataclasses import dataclass
from enum import IntEnum

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

RMCP_VERSION = 0x06
RMCP_SEQ_NO_ACK = 0xFF
RMCP_CLASS_ASF = 0x06
RMCP_CLASS_IPMI = 0x07
RMCP_CLASS_ACK = 0x80
ASF_IANA = 4542
ASF_PING = 0x80
ASF_PONG = 0x40

AUTH_TYPE_NONE = 0x00
AUTH_TYPE_RMCP_PLUS = 0x06

PAYLOAD_ENCRYPTED = 0x80
PAYLOAD_AUTHENTICATED = 0x40
PAYLOAD_TYPE_MASK = 0x3F
NEXT_HEADER = 0x07
AES_BLOCK = 16
KEY_CONSTANT_LENGTH = 20


class Payload(IntEnum):
    """RMCP+ payload types (table 13-16)."""

    IPMI = 0x00
    SOL = 0x01
    OEM = 0x02
    OPEN_SESSION_REQUEST = 0x10
    OPEN_SESSION_RESPONSE = 0x11
    RAKP1 = 0x12
    RAKP2 = 0x13
    RAKP3 = 0x14
    RAKP4 = 0x15


class Status(IntEnum):
    """RMCP+ and RAKP message status codes (table 13-15)."""

    OK = 0x00
    INSUFFICIENT_RESOURCES = 0x01
    INVALID_SESSION_ID = 0x02
    INVALID_PAYLOAD_TYPE = 0x03
    INVALID_AUTH_ALGORITHM = 0x04
    INVALID_INTEGRITY_ALGORITHM = 0x05
    NO_MATCHING_AUTH_PAYLOAD = 0x06
    NO_MATCHING_INTEGRITY_PAYLOAD = 0x07
    INACTIVE_SESSION_ID = 0x08
    INVALID_ROLE = 0x09
    UNAUTHORIZED_ROLE = 0x0A
    INSUFFICIENT_RESOURCES_FOR_ROLE = 0x0B
    INVALID_NAME_LENGTH = 0x0C
    UNAUTHORIZED_NAME = 0x0D
    UNAUTHORIZED_GUID = 0x0E
    INVALID_INTEGRITY_CHECK_VALUE = 0x0F
    INVALID_CONFIDENTIALITY_ALGORITHM = 0x10
    NO_CIPHER_SUITE_MATCH = 0x11
    ILLEGAL_PARAMETER = 0x12


AUTH_NONE, AUTH_HMAC_SHA1, AUTH_HMAC_SHA256 = 0x00, 0x01, 0x03
INTEGRITY_NONE, INTEGRITY_HMAC_SHA1_96, INTEGRITY_HMAC_SHA256_128 = 0x00, 0x01, 0x04
CONF_NONE, CONF_AES_CBC_128 = 0x00, 0x01

# authentication algorithm -> (hash name, length of the RAKP 4 integrity check value)
_AUTH = {AUTH_HMAC_SHA1: ("sha1", 12), AUTH_HMAC_SHA256: ("sha256", 16)}
# integrity algorithm -> (hash name, length of the AuthCode)
_INTEGRITY = {INTEGRITY_HMAC_SHA1_96: ("sha1", 12), INTEGRITY_HMAC_SHA256_128: ("sha256", 16)}


@dataclass(frozen=True, slots=True)
class CipherSuite:
    """One row of table 22-20: the algorithms a session uses."""

    id: int
    auth: int
    integrity: int
    conf: int


CIPHER_SUITES: dict[int, CipherSuite] = {
    s.id: s
    for s in (
        CipherSuite(0, AUTH_NONE, INTEGRITY_NONE, CONF_NONE),
        CipherSuite(1, AUTH_HMAC_SHA1, INTEGRITY_NONE, CONF_NONE),
        CipherSuite(2, AUTH_HMAC_SHA1, INTEGRITY_HMAC_SHA1_96, CONF_NONE),
        CipherSuite(3, AUTH_HMAC_SHA1, INTEGRITY_HMAC_SHA1_96, CONF_AES_CBC_128),
        CipherSuite(15, AUTH_HMAC_SHA256, INTEGRITY_NONE, CONF_NONE),
        CipherSuite(16, AUTH_HMAC_SHA256, INTEGRITY_HMAC_SHA256_128, CONF_NONE),
        CipherSuite(17, AUTH_HMAC_SHA256, INTEGRITY_HMAC_SHA256_128, CONF_AES_CBC_128),
    )
}


class ProtocolError(ValueError):
    """A datagram that is malformed, or fails its integrity check: dropped, never answered."""


def rakp_hmac(suite: CipherSuite, key: bytes, data: bytes) -> bytes:
    """The RAKP key exchange authentication code (full HMAC; empty for RAKP-none)."""
    if suite.auth == AUTH_NONE:
        return b""
    return hmac.new(key, data, _AUTH[suite.auth][0]).digest()


def rakp4_icv(suite: CipherSuite, sik: bytes, data: bytes) -> bytes:
    """The RAKP 4 integrity check value: HMAC_SIK truncated (12 bytes SHA-1, 16 SHA-256)."""
    if suite.auth == AUTH_NONE:
        return b""
    name, length = _AUTH[suite.auth]
    return hmac.new(sik, data, name).digest()[:length]


class SessionKeys:
    """K1 (integrity) and K2 (AES key, first 16 bytes) of an active session (§13.32)."""

    __slots__ = ("_digest", "_length", "k1", "k2", "suite")

    def __init__(self, suite: CipherSuite, sik: bytes) -> None:
        self.suite = suite
        if suite.auth == AUTH_NONE:
            self.k1 = b"\x01" * KEY_CONSTANT_LENGTH
            self.k2 = b"\x02" * KEY_CONSTANT_LENGTH
        else:
            name = _AUTH[suite.auth][0]
            self.k1 = hmac.new(sik, b"\x01" * KEY_CONSTANT_LENGTH, name).digest()
            self.k2 = hmac.new(sik, b"\x02" * KEY_CONSTANT_LENGTH, name).digest()
        self._digest = ""
        self._length = 0
        if suite.integrity != INTEGRITY_NONE:
            self._digest, self._length = _INTEGRITY[suite.integrity]

    @property
    def authenticated(self) -> bool:
        """True if payloads carry an AuthCode."""
        return self.suite.integrity != INTEGRITY_NONE

    @property
    def encrypted(self) -> bool:
        """True if payloads are AES-CBC-128 encrypted."""
        return self.suite.conf != CONF_NONE

    @property
    def auth_code_length(self) -> int:
        """Length of the AuthCode in bytes (0 without integrity)."""
        return self._length

    def auth_code(self, data: bytes) -> bytes:
        """HMAC_K1 over AuthType … Next Header, truncated to the algorithm's length."""
        return hmac.new(self.k1, data, self._digest).digest()[: self._length]

    def encrypt(self, payload: bytes) -> bytes:
        """IV followed by AES-CBC-128 of payload + confidentiality pad (1, 2, … n, n)."""
        pad = (-(len(payload) + 1)) % AES_BLOCK
        data = payload + bytes(range(1, pad + 1)) + bytes([pad])
        iv = os.urandom(AES_BLOCK)
        enc = Cipher(algorithms.AES(self.k2[:AES_BLOCK]), modes.CBC(iv)).encryptor()
        return iv + enc.update(data) + enc.finalize()

    def decrypt(self, data: bytes) -> bytes:
        """The payload of IV + ciphertext; ProtocolError on a bad length or pad."""
        if len(data) < 2 * AES_BLOCK or len(data) % AES_BLOCK:
            raise ProtocolError(f"encrypted payload of {len(data)} bytes")
        dec = Cipher(algorithms.AES(self.k2[:AES_BLOCK]), modes.CBC(data[:AES_BLOCK])).decryptor()
        plain = dec.update(data[AES_BLOCK:]) + dec.finalize()
        pad = plain[-1]
        if pad >= AES_BLOCK or plain[-1 - pad : -1] != bytes(range(1, pad + 1)):
            raise ProtocolError("bad confidentiality pad")
        return plain[: -1 - pad]


# --- RMCP and ASF ------------------------------------------------------------------------


def parse_rmcp(datagram: bytes) -> tuple[int, int, bytes]:
    """(sequence, class, body) of an RMCP datagram."""
    if len(datagram) < 5 or datagram[0] != RMCP_VERSION:
        raise ProtocolError("not RMCP 1.0")
    return datagram[2], datagram[3], datagram[4:]


def rmcp(body: bytes, msg_class: int = RMCP_CLASS_IPMI) -> bytes:
    """An RMCP datagram (no RMCP ACK requested)."""
    return bytes([RMCP_VERSION, 0, RMCP_SEQ_NO_ACK, msg_class]) + body


def asf_pong(ping: bytes) -> bytes | None:
    """The ASF presence pong answering `ping` (an ASF message body), None if not a ping."""
    if len(ping) < 8:
        raise ProtocolError("short ASF message")
    iana, msg_type, tag = struct.unpack_from(">IBB", ping)
    if iana != ASF_IANA or msg_type != ASF_PING:
        return None
    # OEM IANA, OEM-defined, supported entities (IPMI, ASF 1.0), interactions, reserved
    data = struct.pack(">IIBB6x", ASF_IANA, 0, 0x81, 0x00)
    return rmcp(struct.pack(">IBBxB", ASF_IANA, ASF_PONG, tag, len(data)) + data, RMCP_CLASS_ASF)


# --- IPMI v1.5 session wrapper (session-less messages only) ---------------------------------


def parse_v15(body: bytes) -> tuple[int, int, bytes]:
    """(auth type, session id, message) of an IPMI v1.5 session wrapper."""
    if len(body) < 10:
        raise ProtocolError("short IPMI v1.5 header")
    auth_type = body[0]
    (session_id,) = struct.unpack_from("<I", body, 5)
    offset = 9 if auth_type == AUTH_TYPE_NONE else 25
    if len(body) < offset + 1:
        raise ProtocolError("short IPMI v1.5 header")
    length = body[offset]
    msg = body[offset + 1 : offset + 1 + length]
    if len(msg) != length:
        raise ProtocolError("short IPMI v1.5 message")
    return auth_type, session_id, msg


def v15(msg: bytes) -> bytes:
    """A session-less IPMI v1.5 datagram carrying `msg`."""
    return rmcp(struct.pack("<BIIB", AUTH_TYPE_NONE, 0, 0, len(msg)) + msg)


# --- RMCP+ session header and trailer ------------------------------------------------------

_HEADER = struct.Struct("<BBIIH")


@dataclass(frozen=True, slots=True)
class Packet:
    """An RMCP+ message as received, before the session's checks."""

    payload_type: int
    encrypted: bool
    authenticated: bool
    session_id: int
    sequence: int
    payload: bytes
    end: int  # offset of the first byte after the payload
    raw: bytes  # from AuthType to the end, for the integrity check


def parse_v20(body: bytes) -> Packet:
    """Split an RMCP+ message (body of the RMCP datagram) into its header fields."""
    if len(body) < _HEADER.size:
        raise ProtocolError("short RMCP+ header")
    auth_type, ptype, session_id, sequence, length = _HEADER.unpack_from(body)
    if auth_type != AUTH_TYPE_RMCP_PLUS:
        raise ProtocolError("not RMCP+")
    if ptype & PAYLOAD_TYPE_MASK == Payload.OEM:
        raise ProtocolError("OEM explicit payloads are not supported")
    end = _HEADER.size + length
    if len(body) < end:
        raise ProtocolError("short RMCP+ payload")
    return Packet(
        payload_type=ptype & PAYLOAD_TYPE_MASK,
        encrypted=bool(ptype & PAYLOAD_ENCRYPTED),
        authenticated=bool(ptype & PAYLOAD_AUTHENTICATED),
        session_id=session_id,
        sequence=sequence,
        payload=body[_HEADER.size : end],
        end=end,
        raw=body,
    )


def open_payload(packet: Packet, keys: SessionKeys) -> bytes:
    """Verify the AuthCode and decrypt as the session's suite demands; ProtocolError if not."""
    if keys.authenticated:
        if not packet.authenticated:
            raise ProtocolError("unauthenticated message in an authenticated session")
        n = keys.auth_code_length
        raw = packet.raw
        if len(raw) < packet.end + 2 + n or raw[-n - 1] != NEXT_HEADER:
            raise ProtocolError("bad session trailer")
        if packet.end + raw[-n - 2] + 2 + n != len(raw):
            raise ProtocolError("bad integrity pad")
        if not hmac.compare_digest(keys.auth_code(raw[:-n]), raw[-n:]):
            raise ProtocolError("integrity check failed")
    elif packet.authenticated:
        raise ProtocolError("authenticated message in a session without integrity")
    if keys.encrypted:
        if not packet.encrypted:
            raise ProtocolError("clear message in an encrypted session")
        return keys.decrypt(packet.payload)
    if packet.encrypted:
        raise ProtocolError("encrypted message in a session without confidentiality")
    return packet.payload


def v20(
    payload_type: int,
    payload: bytes,
    session_id: int = 0,
    sequence: int = 0,
    keys: SessionKeys | None = None,
) -> bytes:
    """An RMCP+ datagram; with keys, encrypted and signed as the session's suite says."""
    if keys is not None and keys.encrypted:
        payload = keys.encrypt(payload)
        payload_type |= PAYLOAD_ENCRYPTED
    signed = keys is not None and keys.authenticated
    if signed:
        payload_type |= PAYLOAD_AUTHENTICATED
    pdu = _HEADER.pack(AUTH_TYPE_RMCP_PLUS, payload_type, session_id, sequence, len(payload))
    pdu += payload
    if signed:
        assert keys is not None
        pad = (-(len(pdu) + 2)) % 4
        pdu += b"\xff" * pad + bytes([pad, NEXT_HEADER])
        pdu += keys.auth_code(pdu)
    return rmcp(pdu)


# --- IPMI LAN messages ----------------------------------------------------------------------


def checksum(data: bytes) -> int:
    """Two's complement checksum: data plus checksum sums to 0 mod 256."""
    return -sum(data) & 0xFF


@dataclass(frozen=True, slots=True)
class Request:
    """An IPMI request message as carried over LAN (rsSA … data, checksums verified)."""

    rs_sa: int
    netfn: int
    rs_lun: int
    rq_sa: int
    rq_seq: int
    rq_lun: int
    cmd: int
    data: bytes


def parse_request(msg: bytes) -> Request:
    """Decode a LAN request message; ProtocolError on a short message or a bad checksum."""
    if len(msg) < 7:
        raise ProtocolError("short IPMI message")
    if checksum(msg[:2]) != msg[2] or checksum(msg[3:-1]) != msg[-1]:
        raise ProtocolError("bad IPMI checksum")
    return Request(
        rs_sa=msg[0],
        netfn=msg[1] >> 2,
        rs_lun=msg[1] & 3,
        rq_sa=msg[3],
        rq_seq=msg[4] >> 2,
        rq_lun=msg[4] & 3,
        cmd=msg[5],
        data=msg[6:-1],
    )


def response(req: Request, body: bytes) -> bytes:
    """The LAN response message to `req`; `body` starts with the completion code."""
    head = bytes([req.rq_sa, ((req.netfn | 1) << 2) | req.rq_lun])
    rest = bytes([req.rs_sa, (req.rq_seq << 2) | req.rs_lun, req.cmd]) + body
    return head + bytes([checksum(head)]) + rest + bytes([checksum(rest)])
