"""RMCP+ session establishment for the simulated BMC: Open Session and RAKP 1-4 (IPMI v2.0 §13).

`SessionSetup` is the part of `SimBmc` that owns the session table: it picks the cipher suite,
checks the user name, role and RAKP HMACs against the BMC's one user, and derives the session
keys; `SimBmc` (in `bmc`) answers datagrams and the commands sent inside a session. Packets
and crypto are in `rmcpplus`.
"""

from __future__ import annotations

import hmac
import os
import struct
from collections.abc import Callable
from dataclasses import dataclass

from dcmeter.sim import rmcpplus as rp
from dcmeter.sim.rmcpplus import CipherSuite, Payload, ProtocolError, Status

PRIV_USER, PRIV_ADMIN, PRIV_OEM = 2, 4, 5


@dataclass(slots=True)
class Session:
    """One RMCP+ session, from Open Session Request until closed or idle too long."""

    managed_id: int
    console_id: int
    suite: CipherSuite
    max_priv: int
    last_seen: float
    active: bool = False
    rm: bytes = b""
    rc: bytes = b""
    role: bytes = b""  # ROLEm, ULENGTHm, UNAMEm as they enter the RAKP HMACs
    priv: int = PRIV_USER
    keys: rp.SessionKeys | None = None
    out_seq: int = 0
    in_high: int = 0
    in_seen: int = 0  # bit n set: in_high - n was received

    def accept_sequence(self, seq: int) -> bool:
        """Accept each session sequence number once, within a window of 16 below the highest."""
        if seq == 0:
            return False
        if seq > self.in_high:
            shift = seq - self.in_high
            self.in_seen = ((self.in_seen << shift) | 1) & 0xFFFF if shift < 16 else 1
            self.in_high = seq
            return True
        back = self.in_high - seq
        if back >= 16 or self.in_seen & (1 << back):
            return False
        self.in_seen |= 1 << back
        return True

    def next_out_seq(self) -> int:
        """The next outbound session sequence number (never 0)."""
        self.out_seq = self.out_seq % 0xFFFFFFFF + 1
        return self.out_seq


class SessionSetup:
    """Session table and handshake of a `SimBmc`: the attributes below are set by its __init__."""

    _username: bytes
    _password: bytes
    _suites: list[CipherSuite]
    _clock: Callable[[], float]
    _sessions: dict[int, Session]
    guid: bytes
    max_sessions: int
    session_timeout_s: float
    sessions_opened: int

    def _expired(self, session: Session, now: float) -> bool:
        return now - session.last_seen > self.session_timeout_s

    def _purge(self, now: float) -> None:
        for sid in [sid for sid, s in self._sessions.items() if self._expired(s, now)]:
            del self._sessions[sid]

    def _lookup(self, managed_id: int) -> Session | None:
        session = self._sessions.get(managed_id)
        if session is not None and self._expired(session, self._clock()):
            del self._sessions[managed_id]
            return None
        return session

    def _select_suite(self, algorithms: bytes) -> CipherSuite | Status:
        """The enabled suite matching the three proposed algorithm payloads (§13.17)."""
        proposed = []
        for kind in range(3):
            record = algorithms[8 * kind : 8 * kind + 8]
            if len(record) != 8 or record[0] != kind or record[3] != 8:
                return Status.ILLEGAL_PARAMETER
            proposed.append(record[4] & 0x3F)
        auth, integrity, conf = proposed
        if not any(s.auth == auth for s in self._suites):
            return Status.INVALID_AUTH_ALGORITHM
        if not any(s.integrity == integrity for s in self._suites):
            return Status.INVALID_INTEGRITY_ALGORITHM
        if not any(s.conf == conf for s in self._suites):
            return Status.INVALID_CONFIDENTIALITY_ALGORITHM
        for suite in self._suites:
            if (suite.auth, suite.integrity, suite.conf) == (auth, integrity, conf):
                return suite
        return Status.NO_CIPHER_SUITE_MATCH

    def _open_session(self, p: bytes) -> bytes:
        if len(p) < 8:
            raise ProtocolError("short Open Session Request")
        tag, requested = p[0], p[1] & 0x0F
        (console_id,) = struct.unpack_from("<I", p, 4)

        def fail(status: Status) -> bytes:
            return rp.v20(
                Payload.OPEN_SESSION_RESPONSE, struct.pack("<BBxxI", tag, status, console_id)
            )

        if console_id == 0:
            return fail(Status.INVALID_SESSION_ID)
        if requested > PRIV_ADMIN:
            return fail(Status.INVALID_ROLE)
        suite = self._select_suite(p[8:32])
        if isinstance(suite, Status):
            return fail(suite)
        now = self._clock()
        self._purge(now)
        if len(self._sessions) >= self.max_sessions:
            return fail(Status.INSUFFICIENT_RESOURCES)
        managed_id = 0
        while managed_id == 0 or managed_id in self._sessions:
            (managed_id,) = struct.unpack("<I", os.urandom(4))
        max_priv = requested or PRIV_ADMIN
        self._sessions[managed_id] = Session(managed_id, console_id, suite, max_priv, now)
        body = struct.pack("<BBBxII", tag, Status.OK, max_priv, console_id, managed_id)
        for kind, algorithm in enumerate((suite.auth, suite.integrity, suite.conf)):
            body += struct.pack("<BxxBBxxx", kind, 8, algorithm)
        return rp.v20(Payload.OPEN_SESSION_RESPONSE, body)

    def _rakp1(self, p: bytes) -> bytes:
        if len(p) < 28:
            raise ProtocolError("short RAKP message 1")
        tag, role, name_length = p[0], p[24], p[27]
        (managed_id,) = struct.unpack_from("<I", p, 4)
        name = p[28 : 28 + name_length]
        session = self._lookup(managed_id)

        def fail(status: Status, console_id: int = 0) -> bytes:
            self._sessions.pop(managed_id, None)
            return rp.v20(Payload.RAKP2, struct.pack("<BBxxI", tag, status, console_id))

        if session is None or session.active:
            return fail(Status.INVALID_SESSION_ID)
        priv = role & 0x0F
        if role & 0xE0 or not 1 <= priv <= PRIV_OEM:
            return fail(Status.INVALID_ROLE, session.console_id)
        if name_length > 16 or len(name) != name_length:
            return fail(Status.INVALID_NAME_LENGTH, session.console_id)
        if name != self._username:
            return fail(Status.UNAUTHORIZED_NAME, session.console_id)
        if priv > session.max_priv:
            return fail(Status.UNAUTHORIZED_ROLE, session.console_id)
        session.rm, session.rc = p[8:24], os.urandom(16)
        session.role = bytes([role, name_length]) + name
        session.max_priv = priv
        session.last_seen = self._clock()
        sid_m = struct.pack("<I", session.console_id)
        sid_c = struct.pack("<I", managed_id)
        code = rp.rakp_hmac(
            session.suite,
            self._password,
            sid_m + sid_c + session.rm + session.rc + self.guid + session.role,
        )
        body = struct.pack("<BBxxI", tag, Status.OK, session.console_id)
        return rp.v20(Payload.RAKP2, body + session.rc + self.guid + code)

    def _rakp3(self, p: bytes) -> bytes | None:
        if len(p) < 8:
            raise ProtocolError("short RAKP message 3")
        tag, status = p[0], p[1]
        (managed_id,) = struct.unpack_from("<I", p, 4)
        session = self._lookup(managed_id)

        def answer(status: Status, console_id: int, icv: bytes = b"") -> bytes:
            return rp.v20(Payload.RAKP4, struct.pack("<BBxxI", tag, status, console_id) + icv)

        if session is None or session.active or not session.role:
            return answer(Status.INVALID_SESSION_ID, 0)
        if status != Status.OK:
            # The console gave up (it found RAKP 2 wrong, e.g. a wrong password): release it.
            del self._sessions[managed_id]
            return None
        sid_m = struct.pack("<I", session.console_id)
        expected = rp.rakp_hmac(session.suite, self._password, session.rc + sid_m + session.role)
        if not hmac.compare_digest(expected, p[8:]):
            del self._sessions[managed_id]
            return answer(Status.INVALID_INTEGRITY_CHECK_VALUE, session.console_id)
        sik = rp.rakp_hmac(session.suite, self._password, session.rm + session.rc + session.role)
        icv = rp.rakp4_icv(
            session.suite, sik, session.rm + struct.pack("<I", managed_id) + self.guid
        )
        session.keys = rp.SessionKeys(session.suite, sik)
        session.active = True
        session.priv = min(PRIV_USER, session.max_priv)
        session.last_seen = self._clock()
        self.sessions_opened += 1
        return answer(Status.OK, session.console_id, icv)
