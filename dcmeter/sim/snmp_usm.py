"""SNMPv3 user-based security (RFC 3414, RFC 3826) for a simulated agent's one authPriv user.

HMAC-SHA-96 authentication and AES-128-CFB privacy; discovery, time-window and error Reports
(usmStats) as net-snmp sends them. The agent hands each v3 message here with a callback that
answers the decrypted request PDU.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import os
import time
from collections.abc import Callable

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms

from dcmeter.sim.snmp_ber import (
    COUNTER32,
    MAX_MSG,
    OCTETS,
    REPORT,
    SEQ,
    expect,
    get_int,
    int_tlv,
    oid_tlv,
    read_tlv,
    tlv,
)

try:  # cryptography >= 47 files CFB under the "decrepit" modes
    from cryptography.hazmat.decrepit.ciphers.modes import CFB
except ImportError:  # older cryptography
    from cryptography.hazmat.primitives.ciphers.modes import CFB

# The agent's answer to the request PDU at a position, varbinds within a byte budget.
Respond = Callable[[bytes, int, int, int], bytes | None]

_USM_STATS = (1, 3, 6, 1, 6, 3, 15, 1, 1)  # usmStats{UnsupportedSecLevels .1 … DecryptionErrors .6}


@functools.lru_cache(maxsize=64)
def _password_key(password: str) -> bytes:
    """RFC 3414 A.2.2: SHA-1 over the password repeated to 1 MiB."""
    raw = password.encode()
    return hashlib.sha1((raw * (1048576 // len(raw) + 1))[:1048576]).digest()


def _localize(key: bytes, engine_id: bytes) -> bytes:
    """RFC 3414 A.2.2: the key localized to one engine."""
    return hashlib.sha1(key + engine_id + key).digest()


class Usm:
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

    def handle(self, respond: Respond, data: bytes, pos: int, end: int) -> bytes | None:
        """Answer one v3 message (after msgVersion), the PDU by `respond`; None drops it."""
        gs, ge = expect(data, pos, end, SEQ)
        msg_id_end = read_tlv(data, gs, ge)[2]
        msg_id = data[gs:msg_id_end]
        max_size, p = get_int(data, msg_id_end, ge)
        fs, fe = expect(data, p, ge, OCTETS)
        model, _ = get_int(data, fe, ge)
        flags = data[fs] if fe - fs == 1 else -1
        if model != 3 or flags < 0 or flags & 3 == 2:
            return None
        ss, se = expect(data, ge, end, OCTETS)
        ps, pe = expect(data, ss, se, SEQ)
        es, ee = expect(data, ps, pe, OCTETS)
        boots, p = get_int(data, ee, pe)
        etime, p = get_int(data, p, pe)
        us, ue = expect(data, p, pe, OCTETS)
        as_, ae = expect(data, ue, pe, OCTETS)
        vs, ve = expect(data, ae, pe, OCTETS)
        user = data[us:ue]
        scoped = None if flags & 2 else expect(data, se, end, SEQ)

        def report(stat: int, authenticated: bool = False) -> bytes | None:
            self.stats[stat] += 1
            if not flags & 4:
                return None
            request_id = b"\x02\x01\x00"
            if scoped is not None:  # a plaintext request: echo its request-id
                try:
                    p1 = read_tlv(data, scoped[0], scoped[1])[2]
                    p2 = read_tlv(data, p1, scoped[1])[2]
                    pdu_s, pdu_e = read_tlv(data, p2, scoped[1])[1:]
                    request_id = data[pdu_s : read_tlv(data, pdu_s, pdu_e)[2]]
                except ValueError:
                    pass
            counter = int_tlv(self.stats[stat], COUNTER32)
            varbind = tlv(SEQ, oid_tlv((*_USM_STATS, stat, 0)) + counter)
            pdu = tlv(REPORT, request_id + b"\x02\x01\x00\x02\x01\x00" + tlv(SEQ, varbind))
            scoped_pdu = tlv(SEQ, tlv(OCTETS, self.engine_id) + b"\x04\x00" + pdu)
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
        cs, ce = expect(data, se, end, OCTETS)
        if ve - vs != 8:
            return report(6)  # usmStatsDecryptionErrors
        iv = boots.to_bytes(4, "big") + etime.to_bytes(4, "big") + data[vs:ve]
        decryptor = Cipher(algorithms.AES(self.priv_key), CFB(iv)).decryptor()
        plain = decryptor.update(data[cs:ce]) + decryptor.finalize()
        try:
            ss2, se2 = expect(plain, 0, len(plain), SEQ)
            p = expect(plain, ss2, se2, OCTETS)[1]
            ns, ne = expect(plain, p, se2, OCTETS)
        except ValueError:
            return report(6)
        budget = min(max_size, MAX_MSG) - 120 - len(user) - 2 * len(self.engine_id) - (ne - ns)
        pdu = respond(plain, ne, se2, budget)
        if pdu is None:
            return None
        body = tlv(OCTETS, self.engine_id) + tlv(OCTETS, plain[ns:ne]) + pdu
        return self._message(msg_id, user, tlv(SEQ, body), True, encrypt=True)

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
            scoped = tlv(OCTETS, encryptor.update(scoped) + encryptor.finalize())
        flags = (1 if authenticated else 0) | (2 if encrypt else 0)
        head = tlv(OCTETS, self.engine_id) + int_tlv(boots) + int_tlv(etime) + tlv(OCTETS, user)
        inner = head + tlv(OCTETS, bytes(12 if authenticated else 0)) + tlv(OCTETS, priv)
        params = tlv(SEQ, inner)
        wrapped = tlv(OCTETS, params)
        global_fields = msg_id + int_tlv(MAX_MSG) + tlv(OCTETS, bytes((flags,))) + int_tlv(3)
        global_data = tlv(SEQ, global_fields)
        body = b"\x02\x01\x03" + global_data + wrapped + scoped
        msg = tlv(SEQ, body)
        if not authenticated:
            return msg
        # Offset of the 12 zero bytes: each enclosing header, then the user name and `04 0c`.
        at = len(msg) - len(body) + 3 + len(global_data) + len(wrapped) - len(params)
        at += len(params) - len(inner) + len(head) + 2
        digest = hmac.new(self.auth_key, msg, hashlib.sha1).digest()[:12]
        return msg[:at] + digest + msg[at + 12 :]
