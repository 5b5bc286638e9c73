"""Simulated SNMP agents checked with independent clients: net-snmp's tools and pysnmp.

Every value is compared with the model the agent was built from, at the instant the agent
saw: most tests freeze the agent's clock, so values must be exactly the model's.
"""

from __future__ import annotations

import asyncio
import math
import os
import shutil
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest

from dcmeter.sim.loop import LoopThread
from dcmeter.sim.snmp import SimInterface, SimSnmpAgent

T0 = 1_700_000_000.0  # model start (Unix s)
BOOT = T0 - 3600.0  # the agent booted an hour before the model started
SYS_UPTIME = "1.3.6.1.2.1.1.3.0"
SYS_NAME = "1.3.6.1.2.1.1.5.0"
IF = "1.3.6.1.2.1.2.2.1"  # ifEntry
IFX = "1.3.6.1.2.1.31.1.1.1"  # ifXEntry
HR_LOAD = "1.3.6.1.2.1.25.3.3.1.2"
V3 = ("ops", "auth-secret-1", "priv-secret-1")


def ramp(rate: float, start: float = 0.0) -> Callable[[float], float]:
    """Octets since start: `start + rate·(t - T0)`."""
    return lambda t: start + rate * (t - T0)


class Clock:
    """A clock the test sets; the agents read it at each request."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    """One event loop in a background thread for the test's agents, closed with them."""
    with LoopThread() as lt:
        yield lt


@pytest.fixture
def serve(loop: LoopThread) -> Callable[..., tuple[SimSnmpAgent, int]]:
    """Start an agent in the loop thread: (agent, port); all stop when the test ends."""

    def start(**kwargs: Any) -> tuple[SimSnmpAgent, int]:
        agent = SimSnmpAgent(**kwargs)
        return agent, loop.serve(agent)

    return start


@pytest.fixture(scope="module")
def snmp_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for net-snmp's tools: private state and config dirs, no MIBs."""
    for tool in ("snmpget", "snmpwalk", "snmpbulkwalk", "snmpbulkget", "snmpset"):
        assert shutil.which(tool), f"{tool} not found: install Debian package 'snmp'"
    state = tmp_path_factory.mktemp("netsnmp")
    return {**os.environ, "SNMP_PERSISTENT_DIR": str(state), "SNMPCONFPATH": str(state), "MIBS": ""}


def netsnmp(
    env: dict[str, str],
    tool: str,
    port: int,
    *args: str,
    v3: tuple[str, str, str] | None = None,
    community: str = "public",
    timeout: str = "2",
) -> subprocess.CompletedProcess[str]:
    """Run a net-snmp tool against 127.0.0.1:port with numeric output."""
    if v3 is None:
        auth = ["-v2c", "-c", community]
    else:
        user, auth_pass, priv_pass = v3
        auth = [
            "-v3",
            "-l",
            "authPriv",
            "-u",
            user,
            "-a",
            "SHA",
            "-A",
            auth_pass,
            "-x",
            "AES",
            "-X",
            priv_pass,
        ]
    cmd = [
        tool,
        *auth,
        "-m",
        "",
        "-On",
        "-Ot",
        "-t",
        timeout,
        "-r",
        "1",
        f"127.0.0.1:{port}",
        *args,
    ]
    return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=30)


END_OF_MIB = "No more variables left in this MIB View"


def parse(out: str) -> dict[str, tuple[str, str]]:
    """`.OID = TYPE: value` lines as {oid: (type, value)}; type '' where none is printed.

    A walk that reaches the end of the agent's MIB prints endOfMibView on the last OID again:
    that line is left out.
    """
    found: dict[str, tuple[str, str]] = {}
    for line in out.splitlines():
        if " = " not in line or END_OF_MIB in line:
            continue
        oid, rhs = line.split(" = ", 1)
        kind, sep, value = rhs.partition(": ")
        if not sep or " " in kind:
            kind, value = "", rhs
        found[oid.lstrip(".")] = (kind, value.strip('"'))
    return found


def ok(proc: subprocess.CompletedProcess[str]) -> dict[str, tuple[str, str]]:
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return parse(proc.stdout)


def switch(clock: Clock, **kwargs: Any) -> dict[str, Any]:
    """A 4-port switch: a 100G uplink past 2^32 octets, a 10G port, a 1G port without HC
    counters (reset 10 min after boot), a 40G port."""
    ports = [
        SimInterface(
            index=1,
            name="Eth1/1",
            alias="uplink-core",
            speed_mbps=100_000,
            in_octets=ramp(1.25e9, 5 * 2**32 + 777.5),
            out_octets=ramp(0.75e9, 2**32 - 10),
            discontinuity_t=BOOT + 600.0,
        ),
        SimInterface(index=2, name="Eth1/2", in_octets=ramp(3.3e6), out_octets=ramp(1.1e6)),
        SimInterface(
            index=3,
            name="Gi0/3",
            speed_mbps=1000,
            hc=False,
            in_octets=ramp(12_345.6, 2**32 + 99),
            out_octets=ramp(1000.0),
        ),
        SimInterface(
            index=7,
            name="Eth1/7",
            alias="uplink-b",
            speed_mbps=40_000,
            in_octets=ramp(5e8),
            out_octets=ramp(2.5e8),
        ),
    ]
    return {"interfaces": ports, "sys_name": "sw-a", "boot_t": BOOT, "clock": clock, **kwargs}


def counter(fn: Callable[[float], float], t: float, bits: int) -> str:
    return str(math.floor(fn(t)) % 2**bits)


def test_snmpget_v2c_reads_the_model_at_each_request(serve: Any, snmp_env: dict[str, str]) -> None:
    clock = Clock(T0 + 1234.5)
    config = switch(clock)
    _, port = serve(**config)
    up = config["interfaces"][0]
    oids = [
        SYS_UPTIME,
        SYS_NAME,
        f"{IFX}.1.1",
        f"{IFX}.6.1",
        f"{IFX}.10.1",
        f"{IF}.10.1",
        f"{IF}.16.1",
    ]
    for t in (T0 + 1234.5, T0 + 98_765.25):  # values follow the clock, request by request
        clock.t = t
        got = ok(netsnmp(snmp_env, "snmpget", port, *oids))
        assert got == {
            SYS_UPTIME: ("", str(int((t - BOOT) * 100))),
            SYS_NAME: ("STRING", "sw-a"),
            f"{IFX}.1.1": ("STRING", "Eth1/1"),
            f"{IFX}.6.1": ("Counter64", counter(up.in_octets, t, 64)),
            f"{IFX}.10.1": ("Counter64", counter(up.out_octets, t, 64)),
            f"{IF}.10.1": ("Counter32", counter(up.in_octets, t, 32)),
            f"{IF}.16.1": ("Counter32", counter(up.out_octets, t, 32)),
        }
    # Past 2^32 octets the 32-bit counter is the remainder, the 64-bit one the whole count.
    assert int(got[f"{IFX}.6.1"][1]) > 2**32
    assert int(got[f"{IF}.10.1"][1]) == int(got[f"{IFX}.6.1"][1]) % 2**32


def test_counters_advance_at_the_model_rate_on_the_real_clock(
    serve: Any, snmp_env: dict[str, str]
) -> None:
    port_model = ramp(2.5e8, 10**12)
    _, port = serve(
        interfaces=[SimInterface(index=1, name="p1", in_octets=port_model, out_octets=ramp(1.0))],
        boot_t=time.time() - 50,
    )
    for _ in range(2):
        before = time.time()
        got = ok(netsnmp(snmp_env, "snmpget", port, f"{IFX}.6.1"))
        after = time.time()
        value = int(got[f"{IFX}.6.1"][1])
        # The agent read its clock somewhere between the two readings of ours.
        assert math.floor(port_model(before)) <= value <= math.floor(port_model(after))


def expected_ifx(config: dict[str, Any], t: float) -> dict[str, tuple[str, str]]:
    """ifXTable as the model defines it."""
    rows: dict[str, tuple[str, str]] = {}
    for p in config["interfaces"]:
        x = p.index
        rows[f"{IFX}.1.{x}"] = ("STRING", p.name)
        if p.hc:
            rows[f"{IFX}.6.{x}"] = ("Counter64", counter(p.in_octets, t, 64))
            rows[f"{IFX}.10.{x}"] = ("Counter64", counter(p.out_octets, t, 64))
        rows[f"{IFX}.15.{x}"] = ("Gauge32", str(p.speed_mbps))
        rows[f"{IFX}.18.{x}"] = ("STRING", p.alias) if p.alias else ("", "")
        since = 0 if p.discontinuity_t is None else int((p.discontinuity_t - BOOT) * 100)
        rows[f"{IFX}.19.{x}"] = ("", str(since))
    return rows


def test_snmpwalk_and_snmpbulkwalk_see_the_model_ifxtable(
    serve: Any, snmp_env: dict[str, str]
) -> None:
    clock = Clock(T0 + 500.0)
    config = switch(clock)
    _, port = serve(**config)
    want = expected_ifx(config, clock.t)
    for tool in ("snmpwalk", "snmpbulkwalk"):
        assert ok(netsnmp(snmp_env, tool, port, IFX)) == want, tool
    # The whole MIB walks to its end, in order, and the ifTable matches the ports.
    full = ok(netsnmp(snmp_env, "snmpbulkwalk", port, "1.3"))
    # ifSpeed (bit/s) is capped at 2^32-1 from 10G up; ifHighSpeed (Mbit/s) is not.
    assert [full[f"{IF}.5.{x}"] for x in (1, 2, 3, 7)] == [
        ("Gauge32", str(v)) for v in (2**32 - 1, 2**32 - 1, 10**9, 2**32 - 1)
    ]
    assert [full[f"{IFX}.15.{x}"] for x in (1, 2, 3, 7)] == [
        ("Gauge32", str(v)) for v in (100_000, 10_000, 1000, 40_000)
    ]
    assert full["1.3.6.1.2.1.2.1.0"] == ("INTEGER", "4")
    assert [full[f"{IF}.2.{x}"][1] for x in (1, 2, 3, 7)] == ["Eth1/1", "Eth1/2", "Gi0/3", "Eth1/7"]
    assert not any(oid.startswith(HR_LOAD) for oid in full)  # no CPU model, no hrProcessorLoad


def test_getbulk_non_repeaters_and_getnext_end_of_mib(serve: Any, snmp_env: dict[str, str]) -> None:
    clock = Clock(T0 + 60.0)
    _, port = serve(**switch(clock))
    proc = netsnmp(snmp_env, "snmpbulkget", port, "-Cn1", "-Cr3", "1.3.6.1.2.1.1.3", f"{IF}.2")
    lines = [line.split(" = ")[0].lstrip(".") for line in proc.stdout.splitlines()]
    assert proc.returncode == 0, proc.stderr
    assert lines == [SYS_UPTIME, f"{IF}.2.1", f"{IF}.2.2", f"{IF}.2.3"]
    proc = netsnmp(snmp_env, "snmpgetnext", port, f"{IFX}.19.7", "1.3.6.1.2.1.25")
    assert f".{IFX}.19.7 = {END_OF_MIB}" in proc.stdout  # the last OID of the MIB
    assert ok(proc)[f"{IFX}.1.1"] == ("STRING", "Eth1/1")  # after .25 when no hrProcessorLoad


def test_missing_values_are_no_such_instance_or_object(
    serve: Any, snmp_env: dict[str, str]
) -> None:
    _, port = serve(**switch(Clock(T0)))
    got = ok(
        netsnmp(
            snmp_env,
            "snmpget",
            port,
            f"{IFX}.6.3",
            f"{IFX}.6.99",
            f"{IF}.10.3",
            f"{HR_LOAD}.196608",
            "1.3.6.1.2.1.1.3",
        )
    )
    assert got[f"{IFX}.6.3"][1].startswith("No Such Instance")  # hc=False port: no ifHCInOctets
    assert got[f"{IFX}.6.99"][1].startswith("No Such Instance")
    assert got[f"{IF}.10.3"][0] == "Counter32"  # …but its 32-bit counter is there
    assert got[f"{HR_LOAD}.196608"][1].startswith("No Such Object")  # no CPU model given
    assert got["1.3.6.1.2.1.1.3"][1].startswith("No Such Instance")  # object, not instance


def test_hr_processor_load_follows_the_model(serve: Any, snmp_env: dict[str, str]) -> None:
    clock = Clock(T0 + 7.0)

    def loads(t: float) -> list[float]:
        return [10 + (t - T0), 80.6 - (t - T0), 99.7]

    _, port = serve(cpu_loads=loads, sys_name="array-1", clock=clock, boot_t=BOOT)
    for t in (T0 + 7.0, T0 + 33.0):
        clock.t = t
        got = ok(netsnmp(snmp_env, "snmpwalk", port, HR_LOAD))
        want = [str(round(v)) for v in loads(t)]
        assert [got[f"{HR_LOAD}.{196608 + n}"] for n in range(3)] == [("INTEGER", v) for v in want]
        assert len(got) == 3


def test_v3_authpriv_sha_aes_with_netsnmp(serve: Any, snmp_env: dict[str, str]) -> None:
    clock = Clock(T0 + 4321.0)
    config = switch(clock, v3_user=V3)
    _, port = serve(**config)
    up = config["interfaces"][0]
    got = ok(netsnmp(snmp_env, "snmpget", port, SYS_UPTIME, f"{IFX}.6.1", f"{IFX}.1.7", v3=V3))
    assert got == {
        SYS_UPTIME: ("", str(int((clock.t - BOOT) * 100))),
        f"{IFX}.6.1": ("Counter64", counter(up.in_octets, clock.t, 64)),
        f"{IFX}.1.7": ("STRING", "Eth1/7"),
    }
    walked = ok(netsnmp(snmp_env, "snmpbulkwalk", port, f"{IFX}.1", v3=V3))
    assert walked == {f"{IFX}.1.{p.index}": ("STRING", p.name) for p in config["interfaces"]}
    # The same agent still speaks v2c.
    assert ok(netsnmp(snmp_env, "snmpget", port, SYS_NAME))[SYS_NAME] == ("STRING", "sw-a")


@pytest.mark.parametrize(
    ("user", "message"),
    [
        (("ops", "wrong-auth-pw", V3[2]), "Authentication failure"),
        (("ops", V3[1], "wrong-priv-pw"), "Decryption error"),
        (("nobody", V3[1], V3[2]), "Unknown user name"),
    ],
)
def test_v3_wrong_credentials_are_reported_to_netsnmp(
    serve: Any, snmp_env: dict[str, str], user: tuple[str, str, str], message: str
) -> None:
    _, port = serve(**switch(Clock(T0), v3_user=V3))
    proc = netsnmp(snmp_env, "snmpget", port, SYS_UPTIME, v3=user)
    assert proc.returncode != 0
    assert message in proc.stderr
    assert "Timeout" not in proc.stderr  # the agent answered with a report


def test_wrong_community_and_junk_get_silence(serve: Any, snmp_env: dict[str, str]) -> None:
    agent, port = serve(**switch(Clock(T0)), community="s3cret")
    proc = netsnmp(snmp_env, "snmpget", port, SYS_UPTIME, community="public", timeout="0.3")
    assert proc.returncode != 0
    assert "Timeout" in proc.stdout + proc.stderr
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.settimeout(0.2)
        v1_get = bytes.fromhex(
            "30260201000406733363726574a019020101020100020100300e300c06082b060102010103000500"
        )
        for junk in (b"", b"\x30", b"\x30\x84\xff\xff\xff\xff", os.urandom(64), v1_get):
            s.sendto(junk, ("127.0.0.1", port))
            with pytest.raises(TimeoutError):
                s.recvfrom(65535)
    assert agent.requests == 0 and agent.dropped == 2 + 5  # snmpget tried twice (-r 1)
    # After all that, the agent still answers the right community…
    assert ok(netsnmp(snmp_env, "snmpget", port, SYS_NAME, community="s3cret"))[SYS_NAME] == (
        "STRING",
        "sw-a",
    )
    # …and refuses writes, like a read-only agent.
    proc = netsnmp(snmp_env, "snmpset", port, SYS_NAME, "s", "x", community="s3cret")
    assert proc.returncode != 0 and "noAccess" in proc.stdout + proc.stderr


def test_failing_model_callback_is_generr(serve: Any, snmp_env: dict[str, str]) -> None:
    def broken(t: float) -> float:
        raise RuntimeError("model fault")

    _, port = serve(
        interfaces=[SimInterface(index=1, name="p1", in_octets=broken, out_octets=ramp(1.0))]
    )
    proc = netsnmp(snmp_env, "snmpget", port, f"{IF}.16.1", f"{IF}.10.1")
    assert "genError" in proc.stdout + proc.stderr
    assert "Failed object: .1.3.6.1.2.1.2.2.1.10.1" in proc.stdout + proc.stderr  # index 2


# pysnmp, the library the agent's snmp source uses, as a second independent client.


def pysnmp_auth(kind: str) -> Any:
    from pysnmp.hlapi.v3arch.asyncio import (
        CommunityData,
        UsmUserData,
        usmAesCfb128Protocol,
        usmHMACSHAAuthProtocol,
    )

    if kind == "v2c":
        return CommunityData("public", mpModel=1)
    user, auth_pass, priv_pass = {
        "v3": V3,
        "v3-bad-auth": (V3[0], "not-the-pw", V3[2]),
        "v3-bad-priv": (V3[0], V3[1], "not-the-pw"),
    }[kind]
    return UsmUserData(
        user,
        auth_pass,
        priv_pass,
        authProtocol=usmHMACSHAAuthProtocol,
        privProtocol=usmAesCfb128Protocol,
    )


async def pysnmp_read(
    port: int, kind: str, oids: list[str], walk: str | None = None, retries: int = 1
) -> tuple[Any, list[tuple[str, Any]], list[tuple[str, Any]]]:
    """GET `oids` and bulk-walk `walk` with pysnmp: (errorIndication, get varbinds, walk varbinds)."""
    from pysnmp.hlapi.v3arch.asyncio import (
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        bulk_walk_cmd,
        get_cmd,
    )

    engine = SnmpEngine()
    try:
        target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=1, retries=retries)
        auth = pysnmp_auth(kind)
        error, status, _, vbs = await get_cmd(
            engine,
            auth,
            target,
            ContextData(),
            *[ObjectType(ObjectIdentity(o)) for o in oids],
            lookupMib=False,
        )
        if error or status:
            return error or status, [], []
        walked: list[tuple[str, Any]] = []
        if walk:
            async for error, status, _, row in bulk_walk_cmd(
                engine,
                auth,
                target,
                ContextData(),
                0,
                3,
                ObjectType(ObjectIdentity(walk)),
                lookupMib=False,
                lexicographicMode=False,
            ):
                assert not error and not status, (error, status)
                walked += [(str(o), v) for o, v in row]
        return None, [(str(o), v) for o, v in vbs], walked
    finally:
        engine.close_dispatcher()


@pytest.mark.parametrize("kind", ["v2c", "v3"])
def test_pysnmp_get_and_bulk_walk_read_the_model(serve: Any, kind: str) -> None:
    from pysnmp.proto.rfc1902 import Counter32, Counter64, Gauge32, TimeTicks
    from pysnmp.proto.rfc1905 import NoSuchInstance, NoSuchObject

    clock = Clock(T0 + 86_400.0)
    config = switch(clock, v3_user=V3)
    _, port = serve(**config)
    ports = config["interfaces"]
    error, got, walked = asyncio.run(
        pysnmp_read(
            port,
            kind,
            [
                SYS_UPTIME,
                f"{IFX}.6.1",
                f"{IF}.10.1",
                f"{IFX}.6.3",
                f"{IF}.5.1",
                f"{IFX}.15.1",
                f"{HR_LOAD}.196608",
            ],
            walk=f"{IFX}.6",
        )
    )
    assert error is None
    t = clock.t
    assert [
        (o, type(v), str(v) if not isinstance(v, (NoSuchInstance, NoSuchObject)) else "")
        for o, v in got
    ] == [
        (SYS_UPTIME, TimeTicks, str(int((t - BOOT) * 100))),
        (f"{IFX}.6.1", Counter64, counter(ports[0].in_octets, t, 64)),
        (f"{IF}.10.1", Counter32, counter(ports[0].in_octets, t, 32)),
        (f"{IFX}.6.3", NoSuchInstance, ""),
        (f"{IF}.5.1", Gauge32, str(2**32 - 1)),
        (f"{IFX}.15.1", Gauge32, "100000"),
        (f"{HR_LOAD}.196608", NoSuchObject, ""),
    ]
    assert [(o, int(v)) for o, v in walked] == [
        (f"{IFX}.6.{p.index}", math.floor(p.in_octets(t))) for p in ports if p.hc
    ]


@pytest.mark.parametrize(
    ("kind", "indication"), [("v3-bad-auth", "WrongDigest"), ("v3-bad-priv", "DecryptionError")]
)
def test_pysnmp_reports_wrong_v3_passwords(serve: Any, kind: str, indication: str) -> None:
    _, port = serve(**switch(Clock(T0), v3_user=V3))
    error, _, _ = asyncio.run(pysnmp_read(port, kind, [SYS_UPTIME]))
    assert type(error).__name__ == indication


def test_pysnmp_wrong_community_times_out(serve: Any) -> None:
    _, port = serve(**switch(Clock(T0)), community="other")
    error, _, _ = asyncio.run(pysnmp_read(port, "v2c", [SYS_UPTIME], retries=0))
    assert type(error).__name__ == "RequestTimedOut"


def v2c_get(
    sock: socket.socket, port: int, request_id: int, oids: list[str]
) -> list[tuple[str, Any]]:
    """One GET through pysnmp's own v2c message codec (pyasn1) over a plain UDP socket.

    pysnmp's high-level client spends ~6-10 ms on first contact with each new target; its codec
    alone keeps the test with hundreds of agents quick and is still independent of the agent's.
    """
    from pyasn1.codec.ber import decoder, encoder
    from pysnmp.proto import api

    v2c = api.PROTOCOL_MODULES[api.SNMP_VERSION_2C]
    pdu = v2c.GetRequestPDU()
    v2c.apiPDU.set_defaults(pdu)
    v2c.apiPDU.set_request_id(pdu, request_id)
    v2c.apiPDU.set_varbinds(
        pdu, [(tuple(int(a) for a in o.split(".")), v2c.Null("")) for o in oids]
    )
    msg = v2c.Message()
    v2c.apiMessage.set_defaults(msg)
    v2c.apiMessage.set_community(msg, "public")
    v2c.apiMessage.set_pdu(msg, pdu)
    sock.sendto(encoder.encode(msg), ("127.0.0.1", port))
    data, _ = sock.recvfrom(65535)
    answer, _ = decoder.decode(data, asn1Spec=v2c.Message())
    response = v2c.apiMessage.get_pdu(answer)
    assert v2c.apiPDU.get_request_id(response) == request_id
    assert v2c.apiPDU.get_error_status(response) == 0
    return [(str(o), v) for o, v in v2c.apiPDU.get_varbinds(response)]


def test_300_agents_in_one_loop_answer_with_their_own_values(loop: LoopThread) -> None:
    clock = Clock(T0 + 3000.0)
    threads = threading.active_count()
    agents = [
        SimSnmpAgent(
            interfaces=[
                SimInterface(
                    index=1,
                    name=f"up{n}",
                    in_octets=ramp(1000.0 * (n + 1), n),
                    out_octets=ramp(1.0),
                )
            ],
            sys_name=f"sw-{n:03d}",
            clock=clock,
        )
        for n in range(300)
    ]
    ports = loop.serve_many(agents)
    assert len(set(ports)) == 300
    assert threading.active_count() == threads  # all in the one loop thread: none per agent
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.settimeout(5)
        got = [
            v2c_get(sock, port, 1000 + n, [SYS_NAME, f"{IFX}.6.1"]) for n, port in enumerate(ports)
        ]
    assert [(str(name), int(octets)) for (_, name), (_, octets) in got] == [
        (f"sw-{n:03d}", math.floor(ramp(1000.0 * (n + 1), n)(clock.t))) for n in range(300)
    ]


def test_pysnmp_resyncs_after_not_in_time_window(serve: Any) -> None:
    """An authenticated usmStatsNotInTimeWindows report lets a long-lived client catch up."""
    from pysnmp.hlapi.v3arch.asyncio import (
        ContextData,
        ObjectIdentity,
        ObjectType,
        SnmpEngine,
        UdpTransportTarget,
        get_cmd,
    )

    agent, port = serve(**switch(Clock(T0), v3_user=V3))

    async def two_reads() -> list[Any]:
        engine = SnmpEngine()
        target = await UdpTransportTarget.create(("127.0.0.1", port), timeout=1, retries=2)
        results = []
        try:
            for _ in range(2):
                error, status, _, vbs = await get_cmd(
                    engine,
                    pysnmp_auth("v3"),
                    target,
                    ContextData(),
                    ObjectType(ObjectIdentity(SYS_NAME)),
                    lookupMib=False,
                )
                results.append((error, int(status), [str(v) for _, v in vbs]))
                agent._usm._t0 -= 1000  # the agent's engine time leaps 1000 s
        finally:
            engine.close_dispatcher()
        return results

    assert asyncio.run(two_reads()) == [(None, 0, ["sw-a"])] * 2
    assert agent._usm.stats[2] == 1  # usmStatsNotInTimeWindows sent once
