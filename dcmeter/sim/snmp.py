"""Simulated SNMP agents for switches and storage systems, hundreds of them in one event loop.

Each agent owns one UDP socket and answers GET, GETNEXT and GETBULK over SNMPv2c, and over
SNMPv3 USM authPriv (HMAC-SHA-96, AES-128-CFB) when it has a user. The MIB (system group,
IF-MIB ifTable/ifXTable, HOST-RESOURCES hrProcessorLoad) is fixed at construction; values are
computed from the model's callbacks at the moment each request arrives, with one clock read
per request so that all values in one answer belong to the same instant.

Why a BER codec of its own rather than pysnmp: decoding and encoding a 4-OID GET through
pyasn1 costs ~0.6 ms and creating one pysnmp SnmpEngine ~0.1 s (measured here); this codec
answers in tens of microseconds, so one process serves a thousand agents polled every cycle.
Independent clients (net-snmp's snmpget/snmpwalk, pysnmp) check it in the tests.
"""

from __future__ import annotations

import asyncio
import bisect
import functools
import hashlib
import hmac
import itertools
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

try:  # cryptography >= 47 files CFB under the "decrepit" modes
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB

# BER tags (RFC 3416 / RFC 2578).
_INT, _OCTETS, _OID, _SEQ = 0x02, 0x04, 0x06, 0x30
_COUNTER32, _GAUGE32, _TIMETICKS, _COUNTER64 = 0x41, 0x42, 0x43, 0x46
_NO_SUCH_OBJECT, _NO_SUCH_INSTANCE, _END_OF_MIB = b"\x80\x00", b"\x81\x00", b"\x82\x00"
_GET, _GETNEXT, _RESPONSE, _SET, _GETBULK, _REPORT = 0xA0, 0xA1, 0xA2, 0xA3, 0xA5, 0xA8
_TOO_BIG, _GEN_ERR, _NO_ACCESS = 1, 5, 6
_MAX_MSG = 65507  # largest UDP payload over IPv4
_U32 = 2**32

SYS = (1, 3, 6, 1, 2, 1, 1)
IF_NUMBER = (1, 3, 6, 1, 2, 1, 2, 1, 0)
IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_ENTRY = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
HR_PROCESSOR_LOAD = (1, 3, 6, 1, 2, 1, 25, 3, 3, 1, 2)
# hrDeviceIndex of the first processor, as net-snmp numbers them: walk the column, never GET .1.
HR_PROCESSOR_BASE_INDEX = 196608
SYS_OBJECT_ID = (1, 3, 6, 1, 4, 1, 8072, 3, 2, 10)
_USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)  # usmStats{UnsupportedSecLevels .1 … DecryptionErrors .6}


def _length(n: int) -> bytes:
    if n < 0x80:
        return bytes((n,))
    raw = n.to_bytes((n.bit_length() + 7) // 8, "big")
    return bytes((0x80 | len(raw),)) + raw


def _tlv(tag: int, content: bytes) -> bytes:
    return bytes((tag,)) + _length(len(content)) + content


def _int(value: int, tag: int = _INT) -> bytes:
    """Minimal two's-complement encoding; unsigned application types use it too."""
    size = ((value if value >= 0 else ~value).bit_length() + 8) // 8
    return _tlv(tag, value.to_bytes(size, "big", signed=True))


def _oid(oid: tuple[int, ...]) -> bytes:
    out = bytearray()
    for arc in (oid[0] * 40 + oid[1], *oid[2:]):
        chunk = [arc & 0x7F]
        arc >>= 7
        while arc:
            chunk.append(0x80 | (arc & 0x7F))
            arc >>= 7
        out += bytes(reversed(chunk))
    return _tlv(_OID, bytes(out))


def _read(buf: bytes, pos: int, end: int) -> tuple[int, int, int]:
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


def _expect(buf: bytes, pos: int, end: int, tag: int) -> tuple[int, int]:
    found, start, stop = _read(buf, pos, end)
    if found != tag:
        raise ValueError(f"tag {found:#x}, expected {tag:#x}")
    return start, stop


def _get_int(buf: bytes, pos: int, end: int) -> tuple[int, int]:
    """An INTEGER at `pos`: (value, end of its TLV)."""
    start, stop = _expect(buf, pos, end, _INT)
    return int.from_bytes(buf[start:stop], "big", signed=True), stop


def _decode_oid(raw: bytes) -> tuple[int, ...]:
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


@dataclass(frozen=True, slots=True)
class SimInterface:
    """One switch port; `in_octets(t)`/`out_octets(t)` give octets since start at Unix time t."""

    index: int
    name: str
    in_octets: Callable[[float], float]
    out_octets: Callable[[float], float]
    alias: str = ""
    speed_mbps: int = 10000
    hc: bool = True  # False: only the 32-bit ifIn/OutOctets, no ifHC* counters
    discontinuity_t: float | None = None  # Unix time of the last counter discontinuity


class _Now:
    """One request's instant: the clock read once, CPU loads evaluated at most once."""

    __slots__ = ("_cpu", "_loads", "t")

    def __init__(self, t: float, cpu: Callable[[float], Sequence[float]] | None) -> None:
        self.t = t
        self._cpu = cpu
        self._loads: Sequence[float] | None = None

    def loads(self) -> Sequence[float]:
        if self._loads is None:
            assert self._cpu is not None
            self._loads = self._cpu(self.t)
        return self._loads


_Value = Callable[[_Now], bytes]  # returns the encoded value TLV


def _const(tlv: bytes) -> _Value:
    return lambda now: tlv


def _octets(fn: Callable[[float], float], modulus: int, tag: int) -> _Value:
    return lambda now: _int(math.floor(fn(now.t)) % modulus, tag)


def _ticks_since(origin: float) -> _Value:
    return lambda now: _int(max(0, int((now.t - origin) * 100)) % _U32, _TIMETICKS)


def _cpu_load(i: int) -> _Value:
    return lambda now: _int(min(100, max(0, round(now.loads()[i]))))


@functools.lru_cache(maxsize=64)
def _password_key(password: str) -> bytes:
    """RFC 3414 A.2.2: SHA-1 over the password repeated to 1 MiB."""
    raw = password.encode()
    return hashlib.sha1((raw * (1048576 // len(raw) + 1))[:1048576]).digest()


def _localize(key: bytes, engine_id: bytes) -> bytes:
    """RFC 3414 A.2.2: the key localized to one engine."""
    return hashlib.sha1(key + engine_id + key).digest()


class _Usm:
    """SNMPv3 user-based security for one agent with one authPriv user (RFC 3414, RFC 3826)."""

    def __init__(self, user: tuple[str, str, str], engine_id: bytes) -> None:
        name, auth_pass, priv_pass = user
        if len(auth_pass) < 8 or len(priv_pass) < 8:
            raise ValueError("SNMPv3 passwords need at least 8 characters (RFC 3414)")
        self.user = name.encode()
        self.engine_id = engine_id
        self.auth_key = _localize(_password_key(auth_pass), engine_id)
        self.priv_key = _localize(_password_key(priv_pass), engine_id)[:16]
        self.boots = 1
        self._t0 = time.monotonic()
        self._salt = int.from_bytes(os.urandom(8), "big")
        self.stats = [0] * 7  # usmStats counters by their last arc

    def engine_time(self) -> int:
        """snmpEngineTime (s): counted from the agent's creation, independent of its `clock`."""
        return int(time.monotonic() - self._t0)

    def handle(self, agent: SimSnmpAgent, data: bytes, pos: int, end: int) -> bytes | None:
        """Answer one v3 message (after msgVersion); None drops it."""
        gs, ge = _expect(data, pos, end, _SEQ)
        msg_id_end = _read(data, gs, ge)[2]
        msg_id = data[gs:msg_id_end]
        max_size, p = _get_int(data, msg_id_end, ge)
        fs, fe = _expect(data, p, ge, _OCTETS)
        model, _ = _get_int(data, fe, ge)
        flags = data[fs] if fe - fs == 1 else -1
        if model != 3 or flags < 0 or flags & 3 == 2:
            return None
        ss, se = _expect(data, ge, end, _OCTETS)
        ps, pe = _expect(data, ss, se, _SEQ)
        es, ee = _expect(data, ps, pe, _OCTETS)
        boots, p = _get_int(data, ee, pe)
        etime, p = _get_int(data, p, pe)
        us, ue = _expect(data, p, pe, _OCTETS)
        as_, ae = _expect(data, ue, pe, _OCTETS)
        vs, ve = _expect(data, ae, pe, _OCTETS)
        user = data[us:ue]
        scoped = None if flags & 2 else _expect(data, se, end, _SEQ)

        def report(stat: int, authenticated: bool = False) -> bytes | None:
            self.stats[stat] += 1
            if not flags & 4:
                return None
            request_id = b"\x02\x01\x00"
            if scoped is not None:  # a plaintext request: echo its request-id
                try:
                    p1 = _read(data, scoped[0], scoped[1])[2]
                    p2 = _read(data, p1, scoped[1])[2]
                    pdu_s, pdu_e = _read(data, p2, scoped[1])[1:]
                    request_id = data[pdu_s : _read(data, pdu_s, pdu_e)[2]]
                except ValueError:
                    pass
            varbind = _tlv(_SEQ, _oid((*_USM_STATS, stat, 0)) + _int(self.stats[stat], _COUNTER32))
            pdu = _tlv(_REPORT, request_id + b"\x02\x01\x00\x02\x01\x00" + _tlv(_SEQ, varbind))
            scoped_pdu = _tlv(_SEQ, _tlv(_OCTETS, self.engine_id) + b"\x04\x00" + pdu)
            return self._message(msg_id, user, scoped_pdu, authenticated)

        if data[es:ee] != self.engine_id:
            return report(4)  # usmStatsUnknownEngineIDs: the client learns our engine
        if user != self.user:
            return report(3)  # usmStatsUnknownUserNames
        if flags & 3 != 3:
            return report(1)  # usmStatsUnsupportedSecLevels: this user is authPriv only
        whole = data[:as_] + bytes(12) + data[ae:]
        digest = hmac.new(self.auth_key, whole, hashlib.sha1).digest()[:12]
        if ae - as_ != 12 or not hmac.compare_digest(digest, data[as_:ae]):
            return report(5)  # usmStatsWrongDigests
        if boots != self.boots or abs(etime - self.engine_time()) > 150:
            return report(2, authenticated=True)  # usmStatsNotInTimeWindows
        cs, ce = _expect(data, se, end, _OCTETS)
        if ve - vs != 8:
            return report(6)  # usmStatsDecryptionErrors
        iv = boots.to_bytes(4, "big") + etime.to_bytes(4, "big") + data[vs:ve]
        decryptor = Cipher(algorithms.AES(self.priv_key), CFB(iv)).decryptor()
        plain = decryptor.update(data[cs:ce]) + decryptor.finalize()
        try:
            ss2, se2 = _expect(plain, 0, len(plain), _SEQ)
            p = _expect(plain, ss2, se2, _OCTETS)[1]
            ns, ne = _expect(plain, p, se2, _OCTETS)
        except ValueError:
            return report(6)
        budget = min(max_size, _MAX_MSG) - 120 - len(user) - 2 * len(self.engine_id) - (ne - ns)
        pdu = agent._respond(plain, ne, se2, budget)
        if pdu is None:
            return None
        body = _tlv(_OCTETS, self.engine_id) + _tlv(_OCTETS, plain[ns:ne]) + pdu
        return self._message(msg_id, user, _tlv(_SEQ, body), True, encrypt=True)

    def _message(
        self,
        msg_id: bytes,
        user: bytes,
        scoped: bytes,
        authenticated: bool,
        encrypt: bool = False,
    ) -> bytes:
        """An outgoing message from this (authoritative) engine, authenticated if asked."""
        boots, etime = self.boots, self.engine_time()
        priv = b""
        if encrypt:
            self._salt = (self._salt + 1) % 2**64
            priv = self._salt.to_bytes(8, "big")
            iv = boots.to_bytes(4, "big") + etime.to_bytes(4, "big") + priv
            encryptor = Cipher(algorithms.AES(self.priv_key), CFB(iv)).encryptor()
            scoped = _tlv(_OCTETS, encryptor.update(scoped) + encryptor.finalize())
        flags = (1 if authenticated else 0) | (2 if encrypt else 0)
        head = _tlv(_OCTETS, self.engine_id) + _int(boots) + _int(etime) + _tlv(_OCTETS, user)
        inner = head + _tlv(_OCTETS, bytes(12 if authenticated else 0)) + _tlv(_OCTETS, priv)
        params = _tlv(_SEQ, inner)
        wrapped = _tlv(_OCTETS, params)
        global_data = _tlv(_SEQ, msg_id + _int(_MAX_MSG) + _tlv(_OCTETS, bytes((flags,))) + _int(3))
        body = b"\x02\x01\x03" + global_data + wrapped + scoped
        msg = _tlv(_SEQ, body)
        if not authenticated:
            return msg
        # Offset of the 12 zero bytes: each enclosing header, then the user name and `04 0c`.
        at = len(msg) - len(body) + 3 + len(global_data) + len(wrapped) - len(params)
        at += len(params) - len(inner) + len(head) + 2
        digest = hmac.new(self.auth_key, msg, hashlib.sha1).digest()[:12]
        return msg[:at] + digest + msg[at + 12 :]


class _Protocol(asyncio.DatagramProtocol):
    """One agent's UDP socket: every datagram is answered (or not) synchronously."""

    def __init__(self, agent: SimSnmpAgent) -> None:
        self.agent = agent
        self.transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: tuple[str | Any, int]) -> None:
        reply = self.agent.handle(data)
        if reply is not None and self.transport is not None:
            self.transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        """An ICMP error from a client that went away: nothing to do, as a real agent."""


class SimSnmpAgent:
    """One simulated switch or storage system: SNMPv2c, and v3 authPriv if given a user.

    A wrong community, an unknown message version or a malformed datagram get no answer (as
    from a real agent); SET gets noAccess; a callback that raises gets genErr for that varbind.
    """

    def __init__(
        self,
        *,
        community: str = "public",
        interfaces: Sequence[SimInterface] = (),
        cpu_loads: Callable[[float], Sequence[float]] | None = None,
        sys_name: str = "sim",
        boot_t: float | None = None,
        v3_user: tuple[str, str, str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._clock = clock
        self.boot_t = clock() if boot_t is None else boot_t
        self._cpu_loads = cpu_loads
        self._v2c_head = b"\x02\x01\x01" + _tlv(_OCTETS, community.encode())
        self.engine_id = b"\x80\x00\x1f\x88\x05" + os.urandom(8)
        self._usm = _Usm(v3_user, self.engine_id) if v3_user else None
        self.requests = 0  # datagrams answered
        self.dropped = 0  # datagrams not answered: malformed, unsupported, wrong community
        self._transport: asyncio.DatagramTransport | None = None
        self.port: int | None = None
        values, self._objects = self._mib(list(interfaces), sys_name, cpu_loads)
        self._oids = sorted(values)
        self._oid_tlvs = [_oid(o) for o in self._oids]
        self._fns = [values[o] for o in self._oids]
        self._index = {o: i for i, o in enumerate(self._oids)}

    def _mib(
        self,
        interfaces: list[SimInterface],
        sys_name: str,
        cpu_loads: Callable[[float], Sequence[float]] | None,
    ) -> tuple[dict[tuple[int, ...], _Value], set[tuple[int, ...]]]:
        """Every instance OID with its value, and the object (scalar/column) OIDs implemented."""
        if len({i.index for i in interfaces}) != len(interfaces):
            raise ValueError("interface indexes must be unique")
        if any(not 0 < i.index < 2**31 for i in interfaces):
            raise ValueError("interface indexes must be in 1..2147483647 (IF-MIB ifIndex)")
        values: dict[tuple[int, ...], _Value] = {
            (*SYS, 1, 0): _const(_tlv(_OCTETS, f"dcmeter simulated agent {sys_name}".encode())),
            (*SYS, 2, 0): _const(_oid(SYS_OBJECT_ID)),
            (*SYS, 3, 0): _ticks_since(self.boot_t),
            (*SYS, 5, 0): _const(_tlv(_OCTETS, sys_name.encode())),
            IF_NUMBER: _const(_int(len(interfaces))),
        }
        objects = {o[:-1] for o in values}
        if_columns = (1, 2, 3, 5, 7, 8, 10, 16)
        ifx_columns = (1, 6, 10, 15, 18, 19)
        objects |= {(*IF_ENTRY, c) for c in if_columns} | {(*IFX_ENTRY, c) for c in ifx_columns}
        for i in interfaces:
            x = i.index
            name = _const(_tlv(_OCTETS, i.name.encode()))
            row: dict[tuple[int, ...], _Value] = {
                (*IF_ENTRY, 1, x): _const(_int(x)),
                (*IF_ENTRY, 2, x): name,
                (*IF_ENTRY, 3, x): _const(_int(6)),  # ethernetCsmacd
                (*IF_ENTRY, 5, x): _const(_int(min(i.speed_mbps * 1_000_000, _U32 - 1), _GAUGE32)),
                (*IF_ENTRY, 7, x): _const(_int(1)),  # ifAdminStatus up
                (*IF_ENTRY, 8, x): _const(_int(1)),  # ifOperStatus up
                (*IF_ENTRY, 10, x): _octets(i.in_octets, _U32, _COUNTER32),
                (*IF_ENTRY, 16, x): _octets(i.out_octets, _U32, _COUNTER32),
                (*IFX_ENTRY, 1, x): name,
                (*IFX_ENTRY, 15, x): _const(_int(i.speed_mbps, _GAUGE32)),
                (*IFX_ENTRY, 18, x): _const(_tlv(_OCTETS, i.alias.encode())),
            }
            if i.hc:
                row[(*IFX_ENTRY, 6, x)] = _octets(i.in_octets, 2**64, _COUNTER64)
                row[(*IFX_ENTRY, 10, x)] = _octets(i.out_octets, 2**64, _COUNTER64)
            if i.discontinuity_t is None:
                row[(*IFX_ENTRY, 19, x)] = _const(_int(0, _TIMETICKS))
            else:  # sysUpTime at the discontinuity, 0 if before the last boot
                row[(*IFX_ENTRY, 19, x)] = _const(
                    _int(max(0, int((i.discontinuity_t - self.boot_t) * 100)) % _U32, _TIMETICKS)
                )
            values.update(row)
        if cpu_loads is not None:
            objects.add(HR_PROCESSOR_LOAD)
            count = len(cpu_loads(self._clock()))  # the processor count is fixed at start
            for n in range(count):
                values[(*HR_PROCESSOR_LOAD, HR_PROCESSOR_BASE_INDEX + n)] = _cpu_load(n)
        return values, objects

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0 picks a free port) and return the bound port."""
        if self._transport is not None:
            raise RuntimeError("simulated SNMP agent already started")
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _Protocol(self), local_addr=(host, port)
        )
        self._transport = transport
        self.port = int(transport.get_extra_info("sockname")[1])
        return self.port

    async def stop(self) -> None:
        """Close the socket."""
        transport, self._transport = self._transport, None
        if transport is not None:
            transport.close()
            await asyncio.sleep(0)  # let the loop drop the socket

    def handle(self, data: bytes) -> bytes | None:
        """The reply to one datagram, or None to stay silent."""
        try:
            start, end = _expect(data, 0, len(data), _SEQ)
            version, pos = _get_int(data, start, end)
            reply = None
            if version == 1:
                ce = _expect(data, pos, end, _OCTETS)[1]
                head = self._v2c_head
                if data[pos:ce] == head[3:]:  # a wrong community gets silence, as from real agents
                    pdu = self._respond(data, ce, end, _MAX_MSG - 16 - len(head))
                    reply = None if pdu is None else _tlv(_SEQ, head + pdu)
            elif version == 3 and self._usm is not None:
                reply = self._usm.handle(self, data, pos, end)
        except (ValueError, IndexError, OverflowError):
            reply = None
        if reply is None:
            self.dropped += 1
        else:
            self.requests += 1
        return reply

    def _respond(self, data: bytes, pos: int, end: int, budget: int) -> bytes | None:
        """The Response PDU to the request PDU at `pos`, at most `budget` bytes of varbinds."""
        tag, s, e = _read(data, pos, end)
        if tag not in (_GET, _GETNEXT, _GETBULK, _SET):
            return None
        id_end = _expect(data, s, e, _INT)[1]
        request_id = data[s:id_end]
        first, p = _get_int(data, id_end, e)
        second, p = _get_int(data, p, e)
        list_start = p
        vls, vle = _expect(data, p, e, _SEQ)
        names: list[tuple[tuple[int, ...], bytes]] = []
        while vls < vle:
            bs, be = _expect(data, vls, vle, _SEQ)
            os_, oe = _expect(data, bs, be, _OID)
            names.append((_decode_oid(data[os_:oe]), data[bs:oe]))
            vls = be
        original = data[list_start:vle]

        def reply(varbinds: Sequence[bytes], status: int = 0, index: int = 0) -> bytes:
            vbl = original if status and status != _TOO_BIG else _tlv(_SEQ, b"".join(varbinds))
            return _tlv(_RESPONSE, request_id + _int(status) + _int(index) + vbl)

        if tag == _SET:
            return reply((), _NO_ACCESS, 1)
        now = _Now(self._clock(), self._cpu_loads)
        out: list[bytes] = []
        size = 0
        n_oids = len(self._oids)
        try:
            if tag == _GETBULK:
                nonrep = min(max(first, 0), len(names))
                out, size = self._bulk(names, nonrep, max(second, 0), now, budget)
            else:
                for oid, raw in names:
                    if tag == _GET:
                        vb = raw + self._get(oid, now)
                    else:
                        i = bisect.bisect_right(self._oids, oid)
                        vb = raw + _END_OF_MIB if i == n_oids else self._entry(i, now)
                    out.append(_tlv(_SEQ, vb))
                    size += len(out[-1])
        except Exception:  # a model callback failed: genErr, like an agent whose driver errs
            return reply((), _GEN_ERR, len(out) + 1)
        if size > budget:
            return reply((), _TOO_BIG, 0)
        return reply(out)

    def _get(self, oid: tuple[int, ...], now: _Now) -> bytes:
        i = self._index.get(oid)
        if i is not None:
            return self._fns[i](now)
        for k in range(len(oid), 0, -1):
            if oid[:k] in self._objects:
                return _NO_SUCH_INSTANCE
        return _NO_SUCH_OBJECT

    def _entry(self, i: int, now: _Now) -> bytes:
        return self._oid_tlvs[i] + self._fns[i](now)

    def _bulk(
        self,
        names: list[tuple[tuple[int, ...], bytes]],
        nonrep: int,
        max_rep: int,
        now: _Now,
        budget: int,
    ) -> tuple[list[bytes], int]:
        """GETBULK varbinds (RFC 3416 4.2.3), cut short where the next would not fit."""
        n_oids = len(self._oids)
        out: list[bytes] = []
        size = 0
        cursors = [bisect.bisect_right(self._oids, oid) for oid, _ in names]
        last = [raw for _, raw in names]
        rows = itertools.chain(
            [range(nonrep)], itertools.repeat(range(nonrep, len(names)), max_rep)
        )
        for row in rows:
            at_end = True
            for j in row:
                i = cursors[j]
                if i >= n_oids:
                    vb = _tlv(_SEQ, last[j] + _END_OF_MIB)
                else:
                    vb = _tlv(_SEQ, self._entry(i, now))
                    last[j], cursors[j] = self._oid_tlvs[i], i + 1
                    at_end = False
                if size + len(vb) > budget and out:
                    return out, size
                out.append(vb)
                size += len(vb)
            if at_end and row and row[0] >= nonrep:
                break  # every repeater is past the end: the rest would repeat endOfMibView
        return out, size
