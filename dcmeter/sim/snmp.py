"""Simulated SNMP agents for switches and storage systems, hundreds of them in one event loop.

Each agent owns one UDP socket and answers GET, GETNEXT and GETBULK over SNMPv2c, and over
SNMPv3 USM authPriv (HMAC-SHA-96, AES-128-CFB) when it has a user. The MIB (system group,
IF-MIB ifTable/ifXTable, HOST-RESOURCES hrProcessorLoad) is fixed at construction; values are
computed from the model's callbacks at the moment each request arrives, with one clock read
per request so that all values in one answer belong to the same instant.

Why a BER codec of its own (`snmp_ber`, with SNMPv3 security in `snmp_usm`) rather than
pysnmp: decoding and encoding a 4-OID GET through pyasn1 costs ~0.6 ms and creating one pysnmp
SnmpEngine ~0.1 s (measured here); this codec answers in tens of microseconds, so one process
serves a thousand agents polled every cycle. Independent clients (net-snmp's snmpget/snmpwalk,
pysnmp) check it in the tests.
"""

from __future__ import annotations

import asyncio
import bisect
import itertools
import math
import os
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, cast

from dcmeter.sim.snmp_ber import (
    COUNTER32,
    COUNTER64,
    END_OF_MIB,
    GAUGE32,
    GEN_ERR,
    GET,
    GETBULK,
    GETNEXT,
    INT,
    MAX_MSG,
    NO_ACCESS,
    NO_SUCH_INSTANCE,
    NO_SUCH_OBJECT,
    OCTETS,
    OID,
    RESPONSE,
    SEQ,
    SET,
    TIMETICKS,
    TOO_BIG,
    decode_oid,
    expect,
    get_int,
    int_tlv,
    oid_tlv,
    read_tlv,
    tlv,
)
from dcmeter.sim.snmp_usm import Usm

_U32 = 2**32

SYS = (1, 3, 6, 1, 2, 1, 1)
IF_NUMBER = (1, 3, 6, 1, 2, 1, 2, 1, 0)
IF_ENTRY = (1, 3, 6, 1, 2, 1, 2, 2, 1)
IFX_ENTRY = (1, 3, 6, 1, 2, 1, 31, 1, 1, 1)
HR_PROCESSOR_LOAD = (1, 3, 6, 1, 2, 1, 25, 3, 3, 1, 2)
# hrDeviceIndex of the first processor, as net-snmp numbers them: walk the column, never GET .1.
HR_PROCESSOR_BASE_INDEX = 196608
SYS_OBJECT_ID = (1, 3, 6, 1, 4, 1, 8072, 3, 2, 10)


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
    return lambda now: int_tlv(math.floor(fn(now.t)) % modulus, tag)


def _ticks_since(origin: float) -> _Value:
    return lambda now: int_tlv(max(0, int((now.t - origin) * 100)) % _U32, TIMETICKS)


def _extra(fn: Callable[[float], int | str]) -> _Value:
    """An INTEGER or an OCTET STRING computed at the request's instant."""

    def value(now: _Now) -> bytes:
        v = fn(now.t)
        return tlv(OCTETS, v.encode()) if isinstance(v, str) else int_tlv(v)

    return value


def _cpu_load(i: int) -> _Value:
    return lambda now: int_tlv(min(100, max(0, round(now.loads()[i]))))


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

    `extra` adds instances (full OIDs) whose value, an int (INTEGER) or a str (OCTET STRING),
    is computed from the request's time: a metered PDU's objects (pdu.py).
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
        extra: Mapping[tuple[int, ...], Callable[[float], int | str]] | None = None,
    ) -> None:
        self._clock = clock
        self.boot_t = clock() if boot_t is None else boot_t
        self._cpu_loads = cpu_loads
        self._v2c_head = b"\x02\x01\x01" + tlv(OCTETS, community.encode())
        self.engine_id = b"\x80\x00\x1f\x88\x05" + os.urandom(8)
        self._usm = Usm(v3_user, self.engine_id) if v3_user else None
        self.requests = 0  # datagrams answered
        self.dropped = 0  # datagrams not answered: malformed, unsupported, wrong community
        self._transport: asyncio.DatagramTransport | None = None
        self.port: int | None = None
        values, self._objects = self._mib(list(interfaces), sys_name, cpu_loads)
        for oid, fn in (extra or {}).items():  # e.g. a PDU's MIB objects (pdu.py)
            values[oid] = _extra(fn)
            self._objects.add(oid[:-1])
        self._oids = sorted(values)
        self._oid_tlvs = [oid_tlv(o) for o in self._oids]
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
            (*SYS, 1, 0): _const(tlv(OCTETS, f"dcmeter simulated agent {sys_name}".encode())),
            (*SYS, 2, 0): _const(oid_tlv(SYS_OBJECT_ID)),
            (*SYS, 3, 0): _ticks_since(self.boot_t),
            (*SYS, 5, 0): _const(tlv(OCTETS, sys_name.encode())),
            IF_NUMBER: _const(int_tlv(len(interfaces))),
        }
        objects = {o[:-1] for o in values}
        if_columns = (1, 2, 3, 5, 7, 8, 10, 16)
        ifx_columns = (1, 6, 10, 15, 18, 19)
        objects |= {(*IF_ENTRY, c) for c in if_columns} | {(*IFX_ENTRY, c) for c in ifx_columns}
        for i in interfaces:
            x = i.index
            name = _const(tlv(OCTETS, i.name.encode()))
            row: dict[tuple[int, ...], _Value] = {
                (*IF_ENTRY, 1, x): _const(int_tlv(x)),
                (*IF_ENTRY, 2, x): name,
                (*IF_ENTRY, 3, x): _const(int_tlv(6)),  # ethernetCsmacd
                (*IF_ENTRY, 5, x): _const(
                    int_tlv(min(i.speed_mbps * 1_000_000, _U32 - 1), GAUGE32)
                ),
                (*IF_ENTRY, 7, x): _const(int_tlv(1)),  # ifAdminStatus up
                (*IF_ENTRY, 8, x): _const(int_tlv(1)),  # ifOperStatus up
                (*IF_ENTRY, 10, x): _octets(i.in_octets, _U32, COUNTER32),
                (*IF_ENTRY, 16, x): _octets(i.out_octets, _U32, COUNTER32),
                (*IFX_ENTRY, 1, x): name,
                (*IFX_ENTRY, 15, x): _const(int_tlv(i.speed_mbps, GAUGE32)),
                (*IFX_ENTRY, 18, x): _const(tlv(OCTETS, i.alias.encode())),
            }
            if i.hc:
                row[(*IFX_ENTRY, 6, x)] = _octets(i.in_octets, 2**64, COUNTER64)
                row[(*IFX_ENTRY, 10, x)] = _octets(i.out_octets, 2**64, COUNTER64)
            if i.discontinuity_t is None:
                row[(*IFX_ENTRY, 19, x)] = _const(int_tlv(0, TIMETICKS))
            else:  # sysUpTime at the discontinuity, 0 if before the last boot
                row[(*IFX_ENTRY, 19, x)] = _const(
                    int_tlv(max(0, int((i.discontinuity_t - self.boot_t) * 100)) % _U32, TIMETICKS)
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
            start, end = expect(data, 0, len(data), SEQ)
            version, pos = get_int(data, start, end)
            reply = None
            if version == 1:
                ce = expect(data, pos, end, OCTETS)[1]
                head = self._v2c_head
                if data[pos:ce] == head[3:]:  # a wrong community gets silence, as from real agents
                    pdu = self._respond(data, ce, end, MAX_MSG - 16 - len(head))
                    reply = None if pdu is None else tlv(SEQ, head + pdu)
            elif version == 3 and self._usm is not None:
                reply = self._usm.handle(self._respond, data, pos, end)
        except (ValueError, IndexError, OverflowError):
            reply = None
        if reply is None:
            self.dropped += 1
        else:
            self.requests += 1
        return reply

    def _respond(self, data: bytes, pos: int, end: int, budget: int) -> bytes | None:
        """The Response PDU to the request PDU at `pos`, at most `budget` bytes of varbinds."""
        tag, s, e = read_tlv(data, pos, end)
        if tag not in (GET, GETNEXT, GETBULK, SET):
            return None
        id_end = expect(data, s, e, INT)[1]
        request_id = data[s:id_end]
        first, p = get_int(data, id_end, e)
        second, p = get_int(data, p, e)
        list_start = p
        vls, vle = expect(data, p, e, SEQ)
        names: list[tuple[tuple[int, ...], bytes]] = []
        while vls < vle:
            bs, be = expect(data, vls, vle, SEQ)
            os_, oe = expect(data, bs, be, OID)
            names.append((decode_oid(data[os_:oe]), data[bs:oe]))
            vls = be
        original = data[list_start:vle]

        def reply(varbinds: Sequence[bytes], status: int = 0, index: int = 0) -> bytes:
            vbl = original if status and status != TOO_BIG else tlv(SEQ, b"".join(varbinds))
            return tlv(RESPONSE, request_id + int_tlv(status) + int_tlv(index) + vbl)

        if tag == SET:
            return reply((), NO_ACCESS, 1)
        now = _Now(self._clock(), self._cpu_loads)
        out: list[bytes] = []
        size = 0
        n_oids = len(self._oids)
        try:
            if tag == GETBULK:
                nonrep = min(max(first, 0), len(names))
                out, size = self._bulk(names, nonrep, max(second, 0), now, budget)
            else:
                for oid, raw in names:
                    if tag == GET:
                        vb = raw + self._get(oid, now)
                    else:
                        i = bisect.bisect_right(self._oids, oid)
                        vb = raw + END_OF_MIB if i == n_oids else self._entry(i, now)
                    out.append(tlv(SEQ, vb))
                    size += len(out[-1])
        except Exception:  # a model callback failed: genErr, like an agent whose driver errs
            return reply((), GEN_ERR, len(out) + 1)
        if size > budget:
            return reply((), TOO_BIG, 0)
        return reply(out)

    def _get(self, oid: tuple[int, ...], now: _Now) -> bytes:
        i = self._index.get(oid)
        if i is not None:
            return self._fns[i](now)
        for k in range(len(oid), 0, -1):
            if oid[:k] in self._objects:
                return NO_SUCH_INSTANCE
        return NO_SUCH_OBJECT

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
                    vb = tlv(SEQ, last[j] + END_OF_MIB)
                else:
                    vb = tlv(SEQ, self._entry(i, now))
                    last[j], cursors[j] = self._oid_tlvs[i], i + 1
                    at_end = False
                if size + len(vb) > budget and out:
                    return out, size
                out.append(vb)
                size += len(vb)
            if at_end and row and row[0] >= nonrep:
                break  # every repeater is past the end: the rest would repeat endOfMibView
        return out, size
