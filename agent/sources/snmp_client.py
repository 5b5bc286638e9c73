"""One SNMP agent over pysnmp 7 (asyncio): GETs, table walks, errors translated at the edge.

pysnmp is imported inside the methods, so loading a config never loads it. pysnmp returns
errors rather than raising them: an error indication (timeout, USM report) or an
error-status in the response. Both become TargetUnreachable or DeviceError here, with a hint
and never a community or password.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from dcmeter.agent.sources import DeviceError, SourceError, TargetUnreachable
from dcmeter.agent.sources.snmp_oids import Value, oid_tuple

if TYPE_CHECKING:
    from dcmeter.agent.sources.snmp_config import SnmpSettings
# GETBULK rows asked per request while walking a table.
WALK_REPETITIONS = 20
# A table walk that takes more requests than this is abandoned (a looping agent).
MAX_WALK_REQUESTS = 1000
# Requests in flight at once on the shared v2c engine. Its one UDP socket must hold every
# answer that arrives while the event loop is busy: at Linux's default receive buffer
# (212,992 bytes, ~1.3 KB of it per small datagram) 200 answers at once overflowed it and
# the lost ones waited for a retry; 64 leaves a wide margin.
MAX_IN_FLIGHT = 64

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


@dataclass
class _Shared:
    """The v2c engine of one event loop: being made (`making`), then held by `users` clients."""

    making: asyncio.Future[Any]
    in_flight: asyncio.Semaphore
    users: int = 0


class EnginePool:
    """One pysnmp SnmpEngine per event loop, shared by every v2c client on that loop.

    An engine costs ~0.1 s of CPU and ~1 MB to make (its MIB tables): one per switch made
    the first poll of 200 switches cost 20 s of CPU, held the worker threads the BMC reads
    need, and kept 200 MB. v2c keeps no per-agent state in the engine (a community is
    configured per target), so every v2c target can share one engine and its one UDP
    socket, as net-snmp's tools and snmp_exporter do. The engine is made once, off the event
    loop; a client whose read is cancelled meanwhile does not cancel the making. At most
    MAX_IN_FLIGHT requests are in flight on it at once. It is closed when its last user
    closes.
    """

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Shared] = (
            weakref.WeakKeyDictionary()
        )

    async def acquire(self) -> Any:
        """The running loop's shared engine (made on first use); pair with release()."""
        from pysnmp.hlapi.v3arch.asyncio import SnmpEngine

        loop = asyncio.get_running_loop()
        shared = self._by_loop.get(loop)
        if shared is None or (shared.making.done() and shared.making.exception() is not None):
            shared = _Shared(
                asyncio.ensure_future(asyncio.to_thread(SnmpEngine)),
                asyncio.Semaphore(MAX_IN_FLIGHT),
            )
            self._by_loop[loop] = shared
        engine = await asyncio.shield(shared.making)
        shared.users += 1
        return engine

    def release(self, engine: Any) -> None:
        """One user fewer of `engine`; the last one closes its transport."""
        for loop, shared in list(self._by_loop.items()):
            # Another loop's engine may have been cancelled while being made (its loop
            # closed first): that entry is not this engine's, and result() would raise.
            making = shared.making
            if making.done() and not making.cancelled() and making.exception() is None \
                    and making.result() is engine:
                shared.users -= 1
                if shared.users <= 0:
                    del self._by_loop[loop]
                    engine.close_dispatcher()
                return
        engine.close_dispatcher()  # not pooled (its loop is gone): close it alone

    def in_flight(self) -> asyncio.Semaphore:
        """The running loop's bound on requests in flight (acquire() made it)."""
        return self._by_loop[asyncio.get_running_loop()].in_flight

    def users(self) -> int:
        """Clients holding the running loop's shared engine (0 when there is none)."""
        shared = self._by_loop.get(asyncio.get_running_loop())
        return shared.users if shared is not None else 0


V2C_ENGINES = EnginePool()


class SnmpClient:
    """One UDP target, its credentials and an engine, made on first use, kept until close().

    v2c clients share the event loop's engine (EnginePool); a v3 client has an engine of
    its own: after any error indication it is dropped, so the next request discovers the
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
        self._engine: Any = None
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
            V2C_ENGINES.release(engine)
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
        from pysnmp.error import PySnmpError
        from pysnmp.hlapi.v3arch.asyncio import bulk_cmd, get_cmd

        await self._connect()
        var_binds = [_request_var_bind(oid) for oid in oids]
        common = (self._engine, self._auth, self._target, self._context)
        shared = self._config.version == "2c"
        try:
            async with V2C_ENGINES.in_flight() if shared else contextlib.nullcontext():
                if kind == "get":
                    result = await get_cmd(*common, *var_binds, lookupMib=False)
                else:
                    result = await bulk_cmd(
                        *common, 0, WALK_REPETITIONS, *var_binds, lookupMib=False
                    )
        except (PySnmpError, OSError) as exc:
            raise TargetUnreachable(f"{self._address}: cannot send: {exc}") from exc
        indication, status, _index, answered = result
        if indication:
            if self._config.version == "3":
                # pysnmp keeps the agent's engine ID and drops reports from a new one, so
                # an agent whose engine ID changed (device replaced, state reset) would never
                # answer again: start over with discovery on the next request.
                self.close()
            raise self._indication_error(indication)
        status_name = status.prettyPrint() if status else ""
        return status_name, [(str(name), _plain(value)) for name, value in answered]

    async def _connect(self) -> None:
        if self._engine is not None:
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
        if self._config.version == "2c":
            self._engine = await V2C_ENGINES.acquire()
            return
        # Making an engine takes ~0.1 s of CPU (its MIB tables): off the event loop, so
        # other targets' reads of the same tick are not held up; shielded, so a read that
        # times out meanwhile does not waste it (the next read takes it).
        if self._making is None or self._making.cancelled():
            self._making = asyncio.ensure_future(asyncio.to_thread(SnmpEngine))
        engine = await asyncio.shield(self._making)
        self._making = None
        self._engine = engine

    def _indication_error(self, indication: Any) -> SourceError:
        name = type(indication).__name__
        if name == "RequestTimedOut":
            tries = self._config.retries + 1
            requests = "1 request" if tries == 1 else f"{tries} requests"
            return TargetUnreachable(
                f"{self._address} (SNMP v{self._config.version}): no answer to {requests} of"
                f" {self._attempt_timeout_s:.2g} s: {no_answer_hint(self._config)}"
            )
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
