"""A simulated BMC on one UDP port: IPMI v2.0 RMCP+ (lanplus) sessions and DCMI power readings.

What a client meets is what it meets on a server's BMC: an ASF presence pong, Get Channel
Authentication Capabilities in an IPMI v1.5 wrapper, the RMCP+ Open Session and RAKP 1-4
handshake with cipher suites 1, 2, 3, 15, 16 and 17 (0 only when asked for), then
authenticated and encrypted IPMI messages: Set Session Privilege Level, Get Device ID,
Get System GUID, Get Channel Cipher Suites, Close Session, DCMI Get DCMI Capabilities Info
and Get Power Reading. Any other command gets completion code 0xC1 (invalid command).

Each BMC is one `asyncio.DatagramProtocol`; hundreds share one event loop. A datagram is
answered synchronously from `SimBmc.handle`, so there is no task or thread per BMC.
The Open Session / RAKP handshake and the session table are in `bmc_session`, packets and
crypto in `rmcpplus`.
"""

from __future__ import annotations

import asyncio
import math
import struct
import time
import uuid
from collections.abc import Callable, Collection
from dataclasses import dataclass
from typing import Any, cast

import structlog

from dcmeter.sim import rmcpplus as rp
from dcmeter.sim.bmc_session import PRIV_ADMIN, PRIV_OEM, Session, SessionSetup
from dcmeter.sim.rmcpplus import CIPHER_SUITES, Payload, ProtocolError

log = structlog.get_logger(__name__)

NETFN_APP = 0x06
NETFN_GROUP_EXTENSION = 0x2C
DCMI_GROUP = 0xDC
LAN_CHANNEL = 1

CC_OK = 0x00
CC_INVALID_SESSION_ID = 0x87
CC_INVALID_SESSION_HANDLE = 0x88
CC_PRIV_EXCEEDS_LIMIT = 0x81
CC_INVALID_COMMAND = 0xC1
CC_BAD_LENGTH = 0xC7
CC_INVALID_DATA = 0xCC
CC_INSUFFICIENT_PRIVILEGE = 0xD4
CC_NOT_IN_PRESENT_STATE = 0xD5

# Commands a BMC answers outside a session (IPMI v1.5 wrapper or RMCP+ session ID 0).
_SESSIONLESS = frozenset({0x37, 0x38, 0x54})

DEFAULT_CIPHER_SUITES = (1, 2, 3, 15, 16, 17)


@dataclass(frozen=True, slots=True)
class PowerReading:
    """What a BMC reports through DCMI Get Power Reading, in W.

    Values are rounded to whole watts and clamped to 0…65535 on the wire; a value that is not
    finite is sent as 0 with the reading state "not active".
    """

    current_w: float
    minimum_w: float
    maximum_w: float
    average_w: float
    period_s: float = 1.0
    active: bool = True


class SimBmc(SessionSetup):
    """One simulated BMC with one user; `power()` is called on every DCMI power reading.

    `sessions_opened` counts sessions that completed RAKP; `power_reads` counts answered
    power readings. `period_step_s` makes the statistics period change every poll, as some
    BMCs' does: the n-th answered reading (from 0) reports the callback's period + n ×
    period_step_s (a test of series identity: the period is a value, never a label). A power
    callback that raises gets completion code 0xD5 (not available in the present state), as a
    BMC answers while its power sensor is not ready.
    """

    def __init__(
        self,
        power: Callable[[], PowerReading],
        username: str = "admin",
        password: str = "secret",
        dcmi: bool = True,
        *,
        cipher_suites: Collection[int] = DEFAULT_CIPHER_SUITES,
        max_sessions: int = 32,
        session_timeout_s: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
        period_step_s: float = 0.0,
    ) -> None:
        self._username = username.encode()
        self._password = password.encode()
        if len(self._username) > 16:
            raise ValueError("an IPMI user name has at most 16 bytes")
        if len(self._password) > 20:
            raise ValueError("an IPMI v2.0 password has at most 20 bytes")
        unknown = set(cipher_suites) - CIPHER_SUITES.keys()
        if unknown or not cipher_suites:
            raise ValueError(f"cipher suites must be among {sorted(CIPHER_SUITES)}")
        self._suites = [CIPHER_SUITES[i] for i in sorted(set(cipher_suites))]
        self._power = power
        self.dcmi = dcmi
        self.max_sessions = max_sessions
        self.session_timeout_s = session_timeout_s
        self._clock = clock
        self.period_step_s = period_step_s
        self.guid = uuid.uuid4().bytes
        self.sessions_opened = 0
        self.power_reads = 0
        self._sessions: dict[int, Session] = {}
        self._transport: asyncio.DatagramTransport | None = None
        self._power_error_logged = False

    # --- serving ---------------------------------------------------------------------------

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Listen on host:port (0 picks a free port) and return the bound port."""
        if self._transport is not None:
            raise RuntimeError("simulated BMC already started")
        loop = asyncio.get_running_loop()
        transport, _ = await loop.create_datagram_endpoint(
            lambda: _BmcProtocol(self), local_addr=(host, port)
        )
        self._transport = transport
        return self.port

    async def stop(self) -> None:
        """Close the socket and forget every session."""
        transport, self._transport = self._transport, None
        self._sessions.clear()
        if transport is not None:
            transport.close()
            await asyncio.sleep(0)  # let the loop run connection_lost and release the port

    @property
    def port(self) -> int:
        """The bound UDP port (only while started)."""
        if self._transport is None:
            raise RuntimeError("simulated BMC not started")
        return int(self._transport.get_extra_info("sockname")[1])

    @property
    def active_sessions(self) -> int:
        """Sessions that completed RAKP and have not closed or timed out."""
        now = self._clock()
        sessions = list(self._sessions.values())  # may be read from another thread
        return sum(1 for s in sessions if s.active and not self._expired(s, now))

    @property
    def held_sessions(self) -> int:
        """Session slots in use (of `max_sessions`): active ones and handshakes under way."""
        now = self._clock()
        return sum(1 for s in list(self._sessions.values()) if not self._expired(s, now))

    def handle(self, datagram: bytes) -> bytes | None:
        """The answer to one datagram, or None where a BMC stays silent."""
        try:
            _, msg_class, body = rp.parse_rmcp(datagram)
            if msg_class == rp.RMCP_CLASS_ASF:
                return rp.asf_pong(body)
            if msg_class != rp.RMCP_CLASS_IPMI:
                return None
            if body[0] == rp.AUTH_TYPE_RMCP_PLUS:
                return self._v20(rp.parse_v20(body))
            return self._v15(body)
        except (ProtocolError, struct.error):
            return None

    # --- session-less messages -------------------------------------------------------------

    def _v15(self, body: bytes) -> bytes | None:
        _, session_id, msg = rp.parse_v15(body)
        if session_id != 0:
            return None  # IPMI v1.5 sessions are not offered
        req = rp.parse_request(msg)
        answer = self._sessionless(req)
        return None if answer is None else rp.v15(rp.response(req, answer))

    def _sessionless(self, req: rp.Request) -> bytes | None:
        if req.netfn != NETFN_APP or req.cmd not in _SESSIONLESS:
            return None
        return self._app(None, req)[0]

    def _v20(self, packet: rp.Packet) -> bytes | None:
        if packet.session_id == 0:
            if packet.authenticated or packet.encrypted:
                return None
            p = packet.payload
            if packet.payload_type == Payload.OPEN_SESSION_REQUEST:
                return self._open_session(p)
            if packet.payload_type == Payload.RAKP1:
                return self._rakp1(p)
            if packet.payload_type == Payload.RAKP3:
                return self._rakp3(p)
            if packet.payload_type == Payload.IPMI:
                req = rp.parse_request(p)
                answer = self._sessionless(req)
                return None if answer is None else rp.v20(Payload.IPMI, rp.response(req, answer))
            return None
        return self._in_session(packet)

    # --- inside a session ------------------------------------------------------------------

    def _in_session(self, packet: rp.Packet) -> bytes | None:
        session = self._lookup(packet.session_id)
        if session is None or not session.active or session.keys is None:
            return None
        payload = rp.open_payload(packet, session.keys)  # bad integrity: ProtocolError, silent
        if not session.accept_sequence(packet.sequence):
            return None
        session.last_seen = self._clock()
        if packet.payload_type != Payload.IPMI:
            return None
        req = rp.parse_request(payload)
        if req.netfn == NETFN_APP:
            answer, closing = self._app(session, req)
        elif req.netfn == NETFN_GROUP_EXTENSION:
            answer, closing = self._dcmi(req), None
        else:
            answer, closing = bytes([CC_INVALID_COMMAND]), None
        reply = rp.v20(
            Payload.IPMI,
            rp.response(req, answer),
            session.console_id,
            session.next_out_seq(),
            session.keys,
        )
        if closing is not None:
            self._sessions.pop(closing.managed_id, None)
        return reply

    def _app(self, session: Session | None, req: rp.Request) -> tuple[bytes, Session | None]:
        """Application netfn commands: (completion code + data, session to close after)."""
        d = req.data
        if req.cmd == 0x01:  # Get Device ID
            # device 0x20 rev 1, firmware 1.00, IPMI 2.0, no SDR/SEL, manufacturer 0, product 1
            return bytes(
                [CC_OK, 0x20, 0x01, 0x01, 0x00, 0x02, 0x00, 0, 0, 0, 1, 0, 0, 0, 0, 0]
            ), None
        if req.cmd == 0x37:  # Get System GUID
            return bytes([CC_OK]) + self.guid, None
        if req.cmd == 0x38:  # Get Channel Authentication Capabilities
            return self._channel_auth_caps(d), None
        if req.cmd == 0x54:  # Get Channel Cipher Suites
            return self._cipher_suite_records(d), None
        if session is None:
            return bytes([CC_INVALID_COMMAND]), None
        if req.cmd == 0x3B:  # Set Session Privilege Level
            if not d:
                return bytes([CC_BAD_LENGTH]), None
            level = d[0] & 0x0F
            if level == 0:
                return bytes([CC_OK, session.priv]), None
            if level > session.max_priv:
                return bytes([CC_PRIV_EXCEEDS_LIMIT]), None
            session.priv = level
            return bytes([CC_OK, level]), None
        if req.cmd == 0x3C:  # Close Session
            if len(d) < 4:
                return bytes([CC_BAD_LENGTH]), None
            (sid,) = struct.unpack_from("<I", d)
            if sid == 0:
                return bytes([CC_INVALID_SESSION_HANDLE]), None
            target = self._lookup(sid)
            if target is None or not target.active:
                return bytes([CC_INVALID_SESSION_ID]), None
            if target is not session and session.priv < PRIV_ADMIN:
                return bytes([CC_INSUFFICIENT_PRIVILEGE]), None
            return bytes([CC_OK]), target
        return bytes([CC_INVALID_COMMAND]), None

    def _channel_auth_caps(self, d: bytes) -> bytes:
        if len(d) < 2:
            return bytes([CC_BAD_LENGTH])
        if d[0] & 0x0F not in (0x0E, LAN_CHANNEL) or not 1 <= d[1] & 0x0F <= PRIV_OEM:
            return bytes([CC_INVALID_DATA])
        v2 = bool(d[0] & 0x80)
        # no IPMI v1.5 auth types; non-null user names enabled; IPMI v2.0 connections only
        return bytes(
            [CC_OK, LAN_CHANNEL, 0x80 if v2 else 0x00, 0x04, 0x02 if v2 else 0x00, 0, 0, 0, 0]
        )

    def _cipher_suite_records(self, d: bytes) -> bytes:
        if len(d) < 3:
            return bytes([CC_BAD_LENGTH])
        if d[0] & 0x0F not in (0x0E, LAN_CHANNEL):
            return bytes([CC_INVALID_DATA])
        records = b""
        if d[1] == Payload.IPMI:
            if d[2] & 0x80:  # by cipher suite: start tag, id, auth, integrity, confidentiality
                for s in self._suites:
                    records += bytes([0xC0, s.id, s.auth, 0x40 | s.integrity, 0x80 | s.conf])
            else:  # supported algorithms, tagged
                records = bytes(
                    sorted({s.auth for s in self._suites})
                    + sorted({0x40 | s.integrity for s in self._suites})
                    + sorted({0x80 | s.conf for s in self._suites})
                )
        index = d[2] & 0x3F
        return bytes([CC_OK, LAN_CHANNEL]) + records[16 * index : 16 * index + 16]

    # --- DCMI ------------------------------------------------------------------------------

    def _dcmi(self, req: rp.Request) -> bytes:
        d = req.data
        if not self.dcmi or not d or d[0] != DCMI_GROUP:
            return bytes([CC_INVALID_COMMAND])
        if req.cmd == 0x01:
            return self._dcmi_capabilities(d)
        if req.cmd == 0x02:
            return self._power_reading(d)
        return bytes([CC_INVALID_COMMAND])

    def _dcmi_capabilities(self, d: bytes) -> bytes:
        if len(d) < 2:
            return bytes([CC_BAD_LENGTH])
        parameters = {
            1: bytes([0x00, 0x01, 0x00]),  # power management; primary LAN only
            2: bytes([0x00, 0x00, 0x01, 0x00, 0x00]),  # no SEL, GUID, no temperatures
            3: bytes([0x20, 0x00]),  # power management controller at 0x20, channel 0
            4: bytes([LAN_CHANNEL, 0xFF, 0xFF]),  # primary LAN; no secondary LAN or serial
            5: bytes([0x00]),  # no rolling-average periods (enhanced statistics)
        }
        data = parameters.get(d[1])
        if data is None:
            return bytes([CC_INVALID_DATA])
        # DCMI 1.5, parameter revision 2
        return bytes([CC_OK, DCMI_GROUP, 0x01, 0x05, 0x02]) + data

    def _power_reading(self, d: bytes) -> bytes:
        if len(d) < 2:
            return bytes([CC_BAD_LENGTH])
        if d[1] != 0x01:  # only the system power statistics; no enhanced statistics
            return bytes([CC_INVALID_DATA])
        try:
            reading = self._power()
        except Exception as e:
            if not self._power_error_logged:
                self._power_error_logged = True
                log.warning("sim_bmc_power_callback_failed", error=repr(e))
            return bytes([CC_NOT_IN_PRESENT_STATE])
        values = (reading.current_w, reading.minimum_w, reading.maximum_w, reading.average_w)
        finite = all(math.isfinite(v) for v in values)
        watts = [min(max(round(v), 0), 0xFFFF) if finite else 0 for v in values]
        period_s = reading.period_s + self.power_reads * self.period_step_s
        period_ms = round(period_s * 1000) if math.isfinite(period_s) else 0
        state = 0x40 if reading.active and finite else 0x00
        self.power_reads += 1
        return struct.pack(
            "<BBHHHHIIB",
            CC_OK,
            DCMI_GROUP,
            *watts,
            int(time.time()) & 0xFFFFFFFF,
            min(max(period_ms, 0), 0xFFFFFFFF),
            state,
        )


class _BmcProtocol(asyncio.DatagramProtocol):
    """Hands each datagram to its BMC and sends the answer back to the sender."""

    def __init__(self, bmc: SimBmc) -> None:
        self._bmc = bmc
        self._transport: asyncio.DatagramTransport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = cast(asyncio.DatagramTransport, transport)

    def datagram_received(self, data: bytes, addr: Any) -> None:
        try:
            reply = self._bmc.handle(data)
        except Exception:  # a bug here must not close the port for every other client
            log.exception("sim_bmc_datagram_failed")
            return
        if reply is not None and self._transport is not None:
            self._transport.sendto(reply, addr)

    def error_received(self, exc: Exception) -> None:
        """ICMP errors (a client that went away) do not concern a BMC."""
