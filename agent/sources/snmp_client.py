"""One SNMP agent: GETs, table walks, errors translated at the edge.

v2c goes through dcmeter's own codec on one socket per event loop (snmp_v2c.py: ~10x less
CPU per read than pysnmp, docs/benchmarks.md); v3 (USM) through pysnmp 7 (asyncio),
imported inside the methods, so loading a config never loads it. pysnmp returns errors
rather than raising them: an error indication (timeout, USM report) or an error-status in
the response. Both become TargetUnreachable or DeviceError here, with a hint and never a
community or password.
"""

from __future__ import annotations

import asyncio
import functools
import socket
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, Literal

from dcmeter.agent.sources import DeviceError, SourceError, TargetUnreachable, snmp_v2c
from dcmeter.agent.sources.snmp_oids import Value, oid_tuple

if TYPE_CHECKING:
    from dcmeter.agent.sources.snmp_config import SnmpSettings
# GETBULK rows asked per request while walking a table.
WALK_REPETITIONS = 20
# A table walk that takes more requests than this is abandoned (a looping agent).
MAX_WALK_REQUESTS = 1000
# ASN.1 universal tag numbers of the base types SNMP values are built on.
_ASN1_INTEGER = 2
_ASN1_OCTET_STRING = 4
_ASN1_NULL = 5

# What an error indication of pysnmp means for the operator (class name -> hint).
INDICATION_HINTS: dict[str, str] = {
    "UnknownUserName": "unknown user: check username (no such SNMPv3 user on the device)",
    "WrongDigest": "authentication failed (wrong digest): check auth_password and auth_protocol",
    "AuthenticationFailure": "authentication failed: check auth_password and auth_protocol",
    "AuthenticationError": "authentication failed: check auth_password and auth_protocol",
    "DecryptionError": "decryption failed: check priv_password and priv_protocol",
    "UnsupportedSecurityLevel": (
        "the user does not support this security level: check security_level and the "
        "user's auth/priv settings on the device"
    ),
    "NotInTimeWindow": "message outside the time window: the device's engine boots/time "
    "changed; it should pass on the next read",
    "UnknownEngineID": "engine ID discovery failed: check the device's SNMPv3 engine ID",
}

# What an SNMP error-status in a response means (RFC 3416 names).
STATUS_HINTS: dict[str, str] = {
    "authorizationError": "access denied: check the view/ACL of this community or user and "
    "security_level",
    "noAccess": "access denied: check the view of this community or user",
    "genErr": "the agent failed to read a value (genErr)",
    "tooBig": "the answer to one OID does not fit: check the agent's message size",
}


class SnmpClient:
    """One UDP target, its credentials and an engine, made on first use, kept until close().

    v2c clients share the event loop's socket (snmp_v2c.SOCKETS); a v3 client has a pysnmp
    engine of its own: after any error indication it is dropped, so the next request discovers the
    agent's engine ID again (a replaced device keeps its address but not its engine ID).
    Each attempt waits `attempt_timeout_s`; `config.retries` more attempts follow.
    """

    def __init__(
        self, config: SnmpSettings, address: str, attempt_timeout_s: float, clock: Callable[[], int]
    ) -> None:
        self._config = config
        self._address = address
        self._attempt_timeout_s = attempt_timeout_s
        self._clock = clock
        self._engine: Any = None  # v2c: the loop's socket endpoint; v3: a pysnmp engine
        self._peer: tuple[str, int] = ("", 0)  # v2c: the resolved (IPv4 address, port)
        self._making: asyncio.Future[Any] | None = None  # a v3 engine being made
        self._target: Any = None
        self._auth: Any = None
        self._context: Any = None

    def close(self) -> None:
        """Let go of the engine (a v3 one is closed); the next request takes one again."""
        engine, self._engine, self._target = self._engine, None, None
        if engine is None:
            return
        if self._config.version == "2c":
            snmp_v2c.SOCKETS.release(engine)
        else:
            engine.close_dispatcher()

    async def get_groups(
        self, groups: Sequence[tuple[str, ...]]
    ) -> tuple[dict[str, Value], dict[str, int]]:
        """GET every OID, packing groups into PDUs of at most `max_oids_per_request` OIDs.

        A group is never split over two PDUs unless it alone is too long. Returns the
        values and, per OID, the time (ns) its answer arrived.
        """
        values: dict[str, Value] = {}
        stamps: dict[str, int] = {}
        batch: list[str] = []
        limit = self._config.max_oids_per_request
        for group in [*groups, ()]:
            if batch and (not group or len(batch) + len(group) > limit):
                got = await self.get(batch)
                ts = self._clock()
                values.update(got)
                stamps.update(dict.fromkeys(got, ts))
                batch = []
            batch.extend(group)
        return values, stamps

    async def get(self, oids: list[str]) -> dict[str, Value]:
        """One GET; on tooBig the request is split in halves until it fits."""
        status, answered = await self._request("get", oids)
        if status == "tooBig" and len(oids) > 1:
            half = len(oids) // 2
            return {**await self.get(oids[:half]), **await self.get(oids[half:])}
        if status:
            raise self._status_error(status, oids)
        return dict(answered)

    async def walk(self, columns: Sequence[str]) -> dict[str, dict[int, Value]]:
        """Walk table columns side by side with GETBULK; rows keyed by their single index."""
        rows = await self.walk_suffixes(columns)
        return {
            c: {int(s): v for s, v in column.items() if s.isdigit()} for c, column in rows.items()
        }

    async def walk_suffixes(self, columns: Sequence[str]) -> dict[str, dict[str, Value]]:
        """Walk table columns side by side with GETBULK; rows keyed by their index as written
        after the column ("3", or "1.2.5" for a table with a composite INDEX)."""
        rows: dict[str, dict[str, Value]] = {c: {} for c in columns}
        cursor = {c: c for c in columns}
        active = list(columns)
        for _ in range(MAX_WALK_REQUESTS):
            if not active:
                return rows
            status, answered = await self._request("bulk", [cursor[c] for c in active])
            if status:
                raise self._status_error(status, active)
            done: set[str] = set()
            progressed = False
            for i, (oid, value) in enumerate(answered):
                column = active[i % len(active)]
                if column in done:
                    continue
                prefix = column + "."
                if value is None or not oid.startswith(prefix):
                    done.add(column)  # past the column, or endOfMibView
                    continue
                if oid_tuple(oid) <= oid_tuple(cursor[column]):
                    raise DeviceError(f"{self._address}: the agent returned OIDs out of order")
                cursor[column] = oid
                progressed = True
                rows[column][oid[len(prefix) :]] = value
            if not progressed and not done:
                raise DeviceError(f"{self._address}: empty GETBULK answer while walking")
            active = [c for c in active if c not in done]
        raise DeviceError(f"{self._address}: table walk did not end")

    async def _request(
        self, kind: Literal["get", "bulk"], oids: list[str]
    ) -> tuple[str, list[tuple[str, Value]]]:
        """Send one GET or GETBULK; return (error-status name or "", answered (oid, value)s)."""
        await self._connect()
        if self._config.version == "2c":
            return await self._request_v2c(kind, oids)
        return await self._request_v3(kind, oids)

    async def _request_v2c(
        self, kind: Literal["get", "bulk"], oids: list[str]
    ) -> tuple[str, list[tuple[str, Value]]]:
        assert self._config.community is not None
        try:
            return await snmp_v2c.request(
                self._engine,
                self._peer,
                self._config.community.get_secret_value().encode(),
                tuple(oids),
                self._attempt_timeout_s,
                self._config.retries,
                WALK_REPETITIONS if kind == "bulk" else 0,
            )
        except snmp_v2c.NoAnswer:
            raise self._no_answer() from None
        except OSError as exc:
            raise TargetUnreachable(f"{self._address}: cannot send: {exc}") from exc

    async def _request_v3(
        self, kind: Literal["get", "bulk"], oids: list[str]
    ) -> tuple[str, list[tuple[str, Value]]]:
        from pysnmp.error import PySnmpError
        from pysnmp.hlapi.v3arch.asyncio import bulk_cmd, get_cmd

        var_binds = [_request_var_bind(oid) for oid in oids]
        common = (self._engine, self._auth, self._target, self._context)
        try:
            if kind == "get":
                result = await get_cmd(*common, *var_binds, lookupMib=False)
            else:
                result = await bulk_cmd(*common, 0, WALK_REPETITIONS, *var_binds, lookupMib=False)
        except (PySnmpError, OSError) as exc:
            raise TargetUnreachable(f"{self._address}: cannot send: {exc}") from exc
        indication, status, _index, answered = result
        if indication:
            # pysnmp keeps the agent's engine ID and drops reports from a new one, so an
            # agent whose engine ID changed (device replaced, state reset) would never
            # answer again: start over with discovery on the next request.
            self.close()
            raise self._indication_error(indication)
        status_name = status.prettyPrint() if status else ""
        return status_name, [(str(name), _plain(value)) for name, value in answered]

    async def _connect(self) -> None:
        if self._engine is not None:
            return
        if self._config.version == "2c":
            await self._connect_v2c()
            return
        from pysnmp.error import PySnmpError
        from pysnmp.hlapi.v3arch.asyncio import ContextData, SnmpEngine, UdpTransportTarget

        try:
            target = await UdpTransportTarget.create(
                (self._config.host, self._config.port),
                timeout=self._attempt_timeout_s,
                retries=self._config.retries,
            )
        except PySnmpError as exc:
            raise TargetUnreachable(
                f"{self._address}: cannot resolve the address: check host"
            ) from exc
        self._auth = auth_data(self._config)
        self._context = ContextData(contextName=self._config.context_name.encode())
        self._target = target
        # Making an engine takes ~0.1 s of CPU (its MIB tables): off the event loop, so
        # other targets' reads of the same tick are not held up; shielded, so a read that
        # times out meanwhile does not waste it (the next read takes it).
        if self._making is None or self._making.cancelled():
            self._making = asyncio.ensure_future(asyncio.to_thread(SnmpEngine))
        engine = await asyncio.shield(self._making)
        self._making = None
        self._engine = engine

    async def _connect_v2c(self) -> None:
        """Resolve the host (IPv4, as pysnmp's UdpTransportTarget did) and take the socket."""
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(
                self._config.host, self._config.port, family=socket.AF_INET, type=socket.SOCK_DGRAM
            )
        except (OSError, UnicodeError) as exc:
            raise TargetUnreachable(
                f"{self._address}: cannot resolve the address: check host"
            ) from exc
        host, port = infos[0][4][:2]
        self._peer = (str(host), int(port))
        self._engine = await snmp_v2c.SOCKETS.acquire()

    def _no_answer(self) -> TargetUnreachable:
        tries = self._config.retries + 1
        requests = "1 request" if tries == 1 else f"{tries} requests"
        return TargetUnreachable(
            f"{self._address} (SNMP v{self._config.version}): no answer to {requests} of"
            f" {self._attempt_timeout_s:.2g} s: {no_answer_hint(self._config)}"
        )

    def _indication_error(self, indication: Any) -> SourceError:
        name = type(indication).__name__
        if name == "RequestTimedOut":
            return self._no_answer()
        hint = INDICATION_HINTS.get(name, str(indication))
        return DeviceError(f"{self._address}: {name}: {hint}")

    def _status_error(self, status: str, oids: Sequence[str]) -> DeviceError:
        hint = STATUS_HINTS.get(status, "see the device's SNMP documentation")
        return DeviceError(f"{self._address}: {status} for {oids[0]} and others: {hint}")


def no_answer_hint(config: SnmpSettings) -> str:
    """What an SNMP agent that never answers means for this version: an agent silently drops
    a request with a wrong community, a source address outside its ACL or (v3) a wrong
    privacy password, so all of these look like a dead host."""
    if config.version == "2c":
        return (
            "wrong community, or an ACL on the device that does not admit this agent's"
            " address; or the host/port is down (check host, port, community and ACL)"
        )
    return (
        "wrong username, auth_password/auth_protocol or priv_password/priv_protocol (a wrong"
        " priv_password looks the same as no answer), or an ACL on the device; or the"
        " host/port is down"
    )


@functools.lru_cache(maxsize=16384)
def _request_var_bind(oid: str) -> Any:
    """The var-bind asking for `oid`, made once and reused by every request.

    pysnmp resolves each request var-bind against the engine's MIB view (a tree lookup, a
    fifth of the agent's SNMP CPU at 1,000 targets) and marks it resolved; a resolved one is
    passed through as it is. A request var-bind holds no value (Null), so one per OID can
    serve every request, engine and target.
    """
    from pysnmp.hlapi.v3arch.asyncio import ObjectIdentity, ObjectType

    return ObjectType(ObjectIdentity(oid))


def _plain(value: Any) -> Value:
    """A pysnmp value as int or str; None for noSuchObject, noSuchInstance, endOfMibView.

    Decided by the ASN.1 base type, as the decoder hands back base pyasn1 objects for
    INTEGER, OCTET STRING and OBJECT IDENTIFIER values.
    """
    from pysnmp.proto import rfc1905

    if isinstance(value, (rfc1905.NoSuchObject, rfc1905.NoSuchInstance, rfc1905.EndOfMibView)):
        return None
    base = value.tagSet.baseTag.tagId
    if base == _ASN1_INTEGER:  # Integer32, Counter32/64, Gauge32, TimeTicks, ...
        return int(value)
    if base == _ASN1_OCTET_STRING:
        return bytes(value).decode("utf-8", "replace").rstrip("\x00")
    if base == _ASN1_NULL:  # an unanswered slot of an error response
        return None
    return str(value)  # OBJECT IDENTIFIER


def auth_data(config: SnmpSettings) -> Any:
    """pysnmp credentials (CommunityData or UsmUserData) for this config."""
    from pysnmp.hlapi.v3arch.asyncio import CommunityData, UsmUserData, auth

    if config.version == "2c":
        assert config.community is not None
        return CommunityData(config.community.get_secret_value(), mpModel=1)
    auth_protocols = {
        "MD5": auth.USM_AUTH_HMAC96_MD5,
        "SHA": auth.USM_AUTH_HMAC96_SHA,
        "SHA-224": auth.USM_AUTH_HMAC128_SHA224,
        "SHA-256": auth.USM_AUTH_HMAC192_SHA256,
        "SHA-384": auth.USM_AUTH_HMAC256_SHA384,
        "SHA-512": auth.USM_AUTH_HMAC384_SHA512,
    }
    # Names as net-snmp spells them: AES-192/256 extend the key as Blumenthal's draft does,
    # the -C variants as Reeder's ("Cisco") draft does.
    priv_protocols = {
        "DES": auth.USM_PRIV_CBC56_DES,
        "AES": auth.USM_PRIV_CFB128_AES,
        "AES-128": auth.USM_PRIV_CFB128_AES,
        "AES-192": auth.USM_PRIV_CFB192_AES_BLUMENTHAL,
        "AES-256": auth.USM_PRIV_CFB256_AES_BLUMENTHAL,
        "AES-192-C": auth.USM_PRIV_CFB192_AES,
        "AES-256-C": auth.USM_PRIV_CFB256_AES,
    }
    keys: dict[str, Any] = {}
    if config.auth_password is not None:
        keys["authKey"] = config.auth_password.get_secret_value()
        keys["authProtocol"] = auth_protocols[config.auth_protocol]
    if config.priv_password is not None:
        keys["privKey"] = config.priv_password.get_secret_value()
        keys["privProtocol"] = priv_protocols[config.priv_protocol]
    return UsmUserData(config.username, **keys)
