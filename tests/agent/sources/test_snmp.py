"""The snmp source against net-snmp's snmpd (v2c and v3), cross-checked with snmpget/snmpwalk.

Pure parts (port selection, HC/32-bit merging, line rate, processor load, config) are tested
without a peer. Every value asserted against snmpd is read independently with net-snmp's
snmpget, or was put there by the test through an `override` line in snmpd.conf.
"""

from __future__ import annotations

import asyncio
import re
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError
from structlog.testing import capture_logs

from dcmeter.agent.samples import Reading
from dcmeter.agent.scheduler import Poller
from dcmeter.agent.sources import DeviceError, TargetUnreachable
from dcmeter.agent.sources.snmp import SnmpConfig
from dcmeter.agent.sources.snmp_oids import (
    COUNTER32_MODULUS,
    COUNTER64_MODULUS,
    HR_PROCESSOR_LOAD,
    IF_ALIAS,
    IF_COUNTER_DISCONTINUITY_TIME,
    IF_DESCR,
    IF_HC_IN_OCTETS,
    IF_HC_OUT_OCTETS,
    IF_HIGH_SPEED,
    IF_IN_OCTETS,
    IF_NAME,
    IF_OUT_OCTETS,
    IF_SPEED,
    SYS_UPTIME,
    Port,
    build_ports,
    describe_names,
    has_wide_counters,
    line_rate_bps,
    mean_processor_load,
    merge_counters,
    port_oids,
    select_ports,
)
from tests.peers.snmpd import USERS, Snmpd, V3User, loopback_ifindex, start_snmpd

LO = loopback_ifindex()
ALIAS = "uplink-core-1 to spine-A"
# hrProcessorLoad served by `override` (net-snmp itself fills the table only after a minute).
CPU_LOADS = {196608: 37, 196609: 62}
RESTRICTED = "dcm-restricted-view"

# ---------------------------------------------------------------------------------------
# helpers


def config(agent: Snmpd, **fields: Any) -> SnmpConfig:
    """An snmp source config for this agent: v2c with its community unless fields say v3."""
    data: dict[str, Any] = {"type": "snmp", "id": "sw-1", "host": "127.0.0.1", "port": agent.port}
    if fields.get("version") != "3":
        data["community"] = agent.community
    data.setdefault("interfaces", {"if_names": ["lo"]})
    return SnmpConfig.model_validate({**data, **fields})


def v3(user: V3User, **fields: Any) -> dict[str, Any]:
    """Config fields for a v3 user, plus any others."""
    return {**user.source_fields(), **fields}


def read_once(agent: Snmpd, **fields: Any) -> list[Reading]:
    """Build a source, read it once, close it."""

    async def scenario() -> list[Reading]:
        source = config(agent, **fields).build()
        try:
            return await source.read()
        finally:
            await source.close()

    return asyncio.run(scenario())


def read_error(agent: Snmpd, **fields: Any) -> Exception:
    """The exception one read raises."""
    with pytest.raises((DeviceError, TargetUnreachable)) as caught:
        read_once(agent, **fields)
    return caught.value


def value(readings: list[Reading], metric: str, index: int | None = LO) -> float:
    """The one reading of `metric` (of port `index`, or without a port)."""
    found = [
        r.value
        for r in readings
        if r.metric.name == metric and (index is None or r.labels.get("if_index") == str(index))
    ]
    assert len(found) == 1, (metric, index, readings)
    return found[0]


def reading(readings: list[Reading], metric: str, index: int = LO) -> Reading:
    """The one reading of `metric` for port `index`."""
    (found,) = [
        r for r in readings if r.metric.name == metric and r.labels.get("if_index") == str(index)
    ]
    return found


def metrics_of(readings: list[Reading], index: int = LO) -> set[str]:
    """Names of the metrics read for one port."""
    return {r.metric.name for r in readings if r.labels.get("if_index") == str(index)}


def send_over_loopback(n_bytes: int) -> None:
    """Push n_bytes through a TCP connection on 127.0.0.1 (counted by lo in and out)."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()

        def sink() -> None:
            conn, _ = server.accept()
            with conn:
                while conn.recv(1 << 20):
                    pass

        thread = threading.Thread(target=sink)
        thread.start()
        with socket.create_connection(server.getsockname()) as client:
            client.sendall(b"\0" * n_bytes)
        thread.join(10)


def secrets_of(agent: Snmpd) -> list[str]:
    """Every community and password the agent knows, to check none leaks into a message."""
    words = [agent.community]
    for u in agent.users:
        words += [w for w in (u.auth_password, u.priv_password) if w]
    return words


# ---------------------------------------------------------------------------------------
# peers


@pytest.fixture(scope="module")
def snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """snmpd with IF-MIB, an ifAlias on lo, hrProcessorLoad overrides, and a restricted view."""
    agent = start_snmpd(
        tmp_path_factory.mktemp("snmpd"),
        overrides=[(f"{IF_ALIAS}.{LO}", "octet_str", ALIAS)]
        + [(f"{HR_PROCESSOR_LOAD}.{i}", "integer", v) for i, v in CPU_LOADS.items()],
        # net-snmp's own processor table would add real rows a minute after start.
        exclude_modules=["hr_proc"],
        extra_config=[
            "view ifOnly included .1.3.6.1.2.1.1",
            "view ifOnly included .1.3.6.1.2.1.2",
            "view ifOnly included .1.3.6.1.2.1.31",
            f"rocommunity {RESTRICTED} 127.0.0.1 -V ifOnly",
        ],
    )
    yield agent
    agent.stop()


@pytest.fixture(scope="module")
def legacy_snmpd(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Snmpd]:
    """snmpd without ifXTable (no 64-bit counters, no ifName, no ifHighSpeed).

    lo's ifSpeed is 0 (unknown line rate), its ifInOctets sits at the 32-bit wrap point and
    one processor reports a load outside 0..100.
    """
    agent = start_snmpd(
        tmp_path_factory.mktemp("legacy"),
        users=(),
        overrides=[
            (f"{IF_SPEED}.{LO}", "unsigned", 0),
            (f"{IF_IN_OCTETS}.{LO}", "counter", COUNTER32_MODULUS - 1),
            (f"{HR_PROCESSOR_LOAD}.196608", "integer", -5),
        ],
        exclude_modules=["ifXTable", "hr_proc"],
    )
    yield agent
    agent.stop()


# ---------------------------------------------------------------------------------------
# v2c against snmpd


def test_v2c_reads_lo_counters_that_snmpget_brackets(snmpd: Snmpd) -> None:
    counters = [f"{IF_HC_IN_OCTETS}.{LO}", f"{IF_HC_OUT_OCTETS}.{LO}", SYS_UPTIME]

    async def scenario() -> tuple[list[Reading], dict[str, str], list[Reading]]:
        source = config(snmpd).build()
        try:
            first = await source.read()
            theirs = snmpd.get(*counters)
            second = await source.read()
            return first, theirs, second
        finally:
            await source.close()

    first, theirs, second = asyncio.run(scenario())
    # snmpget ran between the two reads; counters and uptime only go up.
    for metric, oid in (("if_in_octets", counters[0]), ("if_out_octets", counters[1])):
        assert value(first, metric) <= int(theirs[oid]) <= value(second, metric)
    uptime = int(theirs[SYS_UPTIME]) / 100
    assert value(first, "sys_uptime_s", None) <= uptime <= value(second, "sys_uptime_s", None)

    spec = reading(first, "if_in_octets").metric
    assert (spec.kind, spec.modulus, spec.unit) == ("counter", float(COUNTER64_MODULUS), "B")
    assert reading(first, "if_in_octets").labels == {"if_index": str(LO), "if_name": "lo"}
    discontinuity = snmpd.get(f"{IF_COUNTER_DISCONTINUITY_TIME}.{LO}")
    assert (
        value(second, "if_counter_discontinuity_s") == int(next(iter(discontinuity.values()))) / 100
    )
    assert {r.labels.get("if_index") for r in first if r.labels} == {str(LO)}


def test_lo_counters_advance_by_at_least_the_bytes_sent(snmpd: Snmpd) -> None:
    sent = 4 << 20

    async def scenario() -> tuple[float, float, float, float]:
        source = config(snmpd).build()
        try:
            before = await source.read()
            send_over_loopback(sent)
            deadline = time.monotonic() + 20  # snmpd caches the interface table ~3 s
            while True:
                after = await source.read()
                grown = value(after, "if_in_octets") - value(before, "if_in_octets")
                if grown >= sent or time.monotonic() > deadline:
                    break
                await asyncio.sleep(0.25)
            return (
                value(before, "if_in_octets"),
                value(after, "if_in_octets"),
                value(before, "if_out_octets"),
                value(after, "if_out_octets"),
            )
        finally:
            await source.close()

    in_before, in_after, out_before, out_after = asyncio.run(scenario())
    assert in_after - in_before >= sent
    assert out_after - out_before >= sent  # on lo every byte sent is also received


def test_line_rate_is_what_snmpd_reports(snmpd: Snmpd) -> None:
    theirs = snmpd.get(f"{IF_HIGH_SPEED}.{LO}", f"{IF_SPEED}.{LO}")
    high, speed = int(theirs[f"{IF_HIGH_SPEED}.{LO}"]), int(theirs[f"{IF_SPEED}.{LO}"])
    readings = read_once(snmpd)
    if high > 0:  # this kernel gives lo a speed (10 Mbit/s on the machine this was written on)
        assert value(readings, "if_speed_bps") == high * 1e6
        assert value(readings, "if_speed_unknown") == 0
    elif speed > 0:
        assert value(readings, "if_speed_bps") == speed
    else:  # containers may report 0: unknown, flagged, no speed reading
        assert "if_speed_bps" not in metrics_of(readings)
        assert value(readings, "if_speed_unknown") == 1


def test_source_identity_and_kind_labels(snmpd: Snmpd) -> None:
    source = config(snmpd, labels={"rack": "A01"}).build()
    assert source.info.protocol == "snmp"
    assert source.info.address == f"127.0.0.1:{snmpd.port}"
    assert source.info.labels == {"kind": "network", "rack": "A01"}
    storage = config(snmpd, role="storage", interfaces=None).build()
    assert storage.info.labels["kind"] == "storage"
    overridden = config(snmpd, labels={"kind": "storage"}).build()
    assert overridden.info.labels["kind"] == "storage"


def test_device_identity_is_snmpds_sysdescr_and_sysobjectid(snmpd: Snmpd) -> None:
    descr, object_id = "1.3.6.1.2.1.1.1.0", "1.3.6.1.2.1.1.2.0"
    theirs = snmpd.get(descr, object_id)

    async def scenario() -> tuple[dict[str, str], dict[str, str]]:
        source = config(snmpd).build()
        try:
            before = dict(source.info.device)  # nothing is read before the first read
            await source.read()
            return before, dict(source.info.device)
        finally:
            await source.close()

    before, after = asyncio.run(scenario())
    assert before == {}
    # snmpget prints the OID with its leading dot in -Oqn form
    assert after == {"sys_descr": theirs[descr], "sys_object_id": theirs[object_id].lstrip(".")}
    assert after["sys_descr"].startswith("Linux")


def test_close_then_read_again_reopens(snmpd: Snmpd) -> None:
    async def scenario() -> tuple[list[Reading], list[Reading]]:
        source = config(snmpd).build()
        first = await source.read()
        await source.close()
        second = await source.read()
        await source.close()
        return first, second

    first, second = asyncio.run(scenario())
    assert value(second, "if_in_octets") >= value(first, "if_in_octets")


# ---------------------------------------------------------------------------------------
# v3 against snmpd


@pytest.mark.parametrize("user", USERS, ids=[u.name for u in USERS])
def test_v3_reads_lo_as_snmpget_does_with_the_same_user(snmpd: Snmpd, user: V3User) -> None:
    oid = f"{IF_HC_IN_OCTETS}.{LO}"

    async def scenario() -> tuple[list[Reading], dict[str, str], list[Reading]]:
        source = config(snmpd, **v3(user)).build()
        try:
            first = await source.read()
            theirs = snmpd.get(oid, user=user)
            return first, theirs, await source.read()
        finally:
            await source.close()

    first, theirs, second = asyncio.run(scenario())
    assert value(first, "if_in_octets") <= int(theirs[oid]) <= value(second, "if_in_octets")
    assert value(first, "sys_uptime_s", None) > 0


def test_v3_wrong_auth_password_says_which_setting(snmpd: Snmpd) -> None:
    user = snmpd.user("dcm-sha256-aes")
    error = read_error(snmpd, **v3(user, auth_password="not-the-password"), retries=0)
    assert isinstance(error, DeviceError)
    assert "auth_password" in str(error)
    assert "not-the-password" not in str(error)


def test_v3_unknown_user_says_check_username(snmpd: Snmpd) -> None:
    user = V3User("dcm-nobody", "SHA", "auth-pass-x", "AES", "priv-pass-x")
    error = read_error(snmpd, **v3(user), retries=0)
    assert isinstance(error, DeviceError)
    assert "username" in str(error)


def test_v3_wrong_priv_password_is_no_answer_with_a_hint(snmpd: Snmpd) -> None:
    # snmpd drops what it cannot decrypt without a report: it looks like a dead agent.
    user = snmpd.user("dcm-sha-aes")
    fields = v3(user, priv_password="wrong-priv-pass", retries=0, timeout_s=0.5)
    error = read_error(snmpd, **fields)
    assert isinstance(error, TargetUnreachable)
    assert "priv_password" in str(error)
    assert "wrong-priv-pass" not in str(error)


def test_v3_level_the_user_lacks_is_a_device_error(snmpd: Snmpd) -> None:
    auth_only = snmpd.user("dcm-auth-only")
    fields = v3(
        auth_only, security_level="authPriv", priv_protocol="AES", priv_password="some-priv-pw"
    )
    error = read_error(snmpd, **fields, retries=0)
    assert isinstance(error, DeviceError)
    assert "security level" in str(error)


def test_v3_user_below_its_required_level_is_denied(snmpd: Snmpd) -> None:
    # `rouser NAME priv`: asking at authNoPriv is answered with authorizationError.
    user = snmpd.user("dcm-sha-aes")
    fields = v3(user, security_level="authNoPriv", priv_password=None)
    error = read_error(snmpd, **fields, retries=0)
    assert isinstance(error, DeviceError)
    assert "authorizationError" in str(error)


# ---------------------------------------------------------------------------------------
# faults


def test_wrong_community_is_unreachable_with_a_hint(snmpd: Snmpd) -> None:
    error = read_error(snmpd, community="not-the-community", retries=0, timeout_s=0.5)
    assert isinstance(error, TargetUnreachable)
    assert str(error).startswith(f"127.0.0.1:{snmpd.port} (SNMP v2c): ")
    assert "wrong community, or an ACL" in str(error)
    assert "not-the-community" not in str(error)
    assert "no answer to 1 request of 0.45 s" in str(error)  # retries=0: no second try


@pytest.mark.parametrize("version", ["2c", "3"])
def test_poller_timeout_keeps_the_snmp_diagnosis(snmpd: Snmpd, version: str) -> None:
    """The poller's own timeout (here shorter than the client's) still names the target,
    the version and what silence means for it."""
    fields: dict[str, Any] = {"community": "not-the-community", "timeout_s": 10}
    if version == "3":
        user = snmpd.user("dcm-sha-aes")
        fields = v3(user, priv_password="wrong-priv-pass", timeout_s=10)

    async def scenario() -> str:
        source = config(snmpd, **fields).build()
        poller = Poller([source], [0.5])
        try:
            with capture_logs() as logs:
                assert await poller.poll() == []
        finally:
            await poller.close()
        return str(next(e["reason"] for e in logs if e["event"] == "target failed"))

    reason = asyncio.run(scenario())
    assert reason.startswith(f"127.0.0.1:{snmpd.port} (snmp): no answer within 0.5 s (timeout_s)")
    assert f"v{version}: " in reason
    if version == "2c":
        assert "wrong community, or an ACL" in reason
    else:
        assert "priv_password" in reason and "auth_password" in reason
    assert "not-the-community" not in reason and "wrong-priv-pass" not in reason


def test_no_agent_on_the_port_is_unreachable() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
        s.bind(("127.0.0.1", 0))  # bound and silent
        port = s.getsockname()[1]
        cfg = SnmpConfig.model_validate(
            {
                "type": "snmp",
                "id": "x",
                "host": "127.0.0.1",
                "port": port,
                "community": "c0mm",
                "timeout_s": 0.3,
                "retries": 0,
                "interfaces": {"if_indexes": [1]},
            }
        )

        async def scenario() -> None:
            source = cfg.build()
            try:
                await source.read()
            finally:
                await source.close()

        with pytest.raises(TargetUnreachable, match="no answer"):
            asyncio.run(scenario())


def test_no_error_message_carries_a_secret(snmpd: Snmpd) -> None:
    user = snmpd.user("dcm-sha512-aes256")
    cases = [
        {"community": "wrong-community-1", "retries": 0, "timeout_s": 0.3},
        v3(user, auth_password="wrong-auth-pass", retries=0),
        v3(user, priv_password="wrong-priv-pass", retries=0, timeout_s=0.3),
        {"interfaces": {"if_names": ["no-such-port"]}},
    ]
    for fields in cases:
        error = read_error(snmpd, **fields)
        for word in [*secrets_of(snmpd), "wrong-community-1", "wrong-auth-pass", "wrong-priv-pass"]:
            assert word not in str(error)


# ---------------------------------------------------------------------------------------
# port selection against snmpd


def test_select_by_alias_pattern(snmpd: Snmpd) -> None:
    assert snmpd.get(f"{IF_ALIAS}.{LO}")[f"{IF_ALIAS}.{LO}"] == ALIAS
    readings = read_once(snmpd, interfaces={"if_alias_pattern": r"^uplink-core-\d+ to spine"})
    assert {r.labels["if_name"] for r in readings if r.labels} == {"lo"}
    assert "if_in_octets" in metrics_of(readings)


def test_select_by_if_index(snmpd: Snmpd) -> None:
    readings = read_once(snmpd, interfaces={"if_indexes": [LO]})
    assert reading(readings, "if_out_octets").labels == {"if_index": str(LO), "if_name": "lo"}


def test_every_port_snmpwalk_lists_can_be_selected_by_name(snmpd: Snmpd) -> None:
    names = snmpd.walk(IF_NAME)
    readings = read_once(snmpd, interfaces={"if_names": sorted(set(names.values()))})
    by_index = {r.labels["if_index"]: r.labels["if_name"] for r in readings if r.labels}
    assert by_index == {oid.rsplit(".", 1)[1]: name for oid, name in names.items()}


def test_unknown_port_lists_the_names_seen(snmpd: Snmpd) -> None:
    error = read_error(snmpd, interfaces={"if_names": ["Ethernet1/49"], "if_indexes": [999999]})
    assert isinstance(error, DeviceError)
    message = str(error)
    assert "'Ethernet1/49'" in message and "999999" in message
    assert f"lo ({LO})" in message


def test_partly_found_selection_reads_what_exists_and_warns_once(snmpd: Snmpd) -> None:
    async def scenario() -> list[list[Reading]]:
        source = config(
            snmpd, interfaces={"if_names": ["lo", "Ethernet9/9"]}, rewalk_every=1
        ).build()
        try:
            return [await source.read() for _ in range(3)]  # walks on every read
        finally:
            await source.close()

    with capture_logs() as logs:
        reads = asyncio.run(scenario())
    assert all("if_in_octets" in metrics_of(r) for r in reads)
    warnings = [e for e in logs if e["event"] == "selected ports not found"]
    assert len(warnings) == 1
    assert warnings[0]["missing"] == ["if_name 'Ethernet9/9'"]


def test_ports_are_walked_again_after_the_agent_restarts(tmp_path: Path) -> None:
    agent = start_snmpd(tmp_path, overrides=[(f"{IF_ALIAS}.{LO}", "octet_str", "uplink-a")])
    user = agent.user("dcm-sha-aes")
    engines = [agent.engine()]
    try:

        async def scenario() -> tuple[list[Reading], Exception, list[Reading]]:
            fields = v3(user, interfaces={"if_alias_pattern": "^uplink"})
            source = config(agent, **fields).build()
            try:
                first = await source.read()
                while value(first, "sys_uptime_s", None) < 3:  # so a restart goes backwards
                    await asyncio.sleep(0.25)
                    first = await source.read()
                # After the reboot lo is no longer an uplink: only a new walk can notice.
                agent.restart(overrides=[(f"{IF_ALIAS}.{LO}", "octet_str", "spare")])
                engines.append(agent.engine())
                with pytest.raises(DeviceError) as caught:
                    await source.read()
                agent.restart(overrides=[(f"{IF_ALIAS}.{LO}", "octet_str", "uplink-b")])
                return first, caught.value, await source.read()
            finally:
                await source.close()

        first, error, after = asyncio.run(scenario())
    finally:
        agent.stop()
    # A reboot as a switch does it: same engine ID, engineBoots one up (v3 must cope).
    assert engines[1][0] == engines[0][0] and engines[1][1] == engines[0][1] + 1
    assert "if_in_octets" in metrics_of(first)
    assert "no selected port found" in str(error) and f"lo ({LO})" in str(error)
    assert value(after, "sys_uptime_s", None) < value(first, "sys_uptime_s", None)
    assert "if_in_octets" in metrics_of(after)


def test_v3_agent_with_a_new_engine_id_is_rediscovered(tmp_path: Path) -> None:
    agent = start_snmpd(tmp_path)
    user = agent.user("dcm-sha256-aes")
    before = agent.engine()[0]
    try:

        async def scenario() -> tuple[list[Reading], Exception, list[Reading]]:
            source = config(agent, **v3(user, timeout_s=1, retries=0)).build()
            try:
                first = await source.read()
                agent.restart(new_engine_id=True)  # a replaced device at the same address
                with pytest.raises(TargetUnreachable) as caught:
                    await source.read()  # pysnmp drops reports from an unknown engine ID
                return first, caught.value, await source.read()
            finally:
                await source.close()

        first, error, after = asyncio.run(scenario())
        assert agent.engine()[0] != before
    finally:
        agent.stop()
    assert "no answer" in str(error)
    assert value(after, "if_in_octets") >= value(first, "if_in_octets")


# ---------------------------------------------------------------------------------------
# storage (HOST-RESOURCES-MIB)


def test_storage_cpu_is_the_mean_hr_processor_load(snmpd: Snmpd) -> None:
    theirs = snmpd.walk(HR_PROCESSOR_LOAD)
    assert {int(k.rsplit(".", 1)[1]): int(v) for k, v in theirs.items()} == CPU_LOADS
    readings = read_once(snmpd, role="storage", interfaces=None)
    cpu = [r for r in readings if r.metric.name == "cpu_util_pct"]
    assert [r.value for r in cpu] == [sum(CPU_LOADS.values()) / len(CPU_LOADS)]
    assert cpu[0].metric.kind == "gauge" and cpu[0].labels == {}
    assert not any(r.metric.name.startswith("if_") for r in readings)


def test_storage_with_ports_reads_both(snmpd: Snmpd) -> None:
    readings = read_once(snmpd, role="storage", interfaces={"if_names": ["lo"]})
    assert {"cpu_util_pct", "sys_uptime_s", "if_in_octets"} <= {r.metric.name for r in readings}


def test_storage_without_host_resources_in_view_is_a_device_error(snmpd: Snmpd) -> None:
    error = read_error(snmpd, role="storage", interfaces=None, community=RESTRICTED)
    assert isinstance(error, DeviceError)
    assert "hrProcessorLoad" in str(error) and "HOST-RESOURCES-MIB" in str(error)


def test_storage_load_outside_0_to_100_fails_the_target(legacy_snmpd: Snmpd) -> None:
    error = read_error(legacy_snmpd, role="storage", interfaces=None)
    assert isinstance(error, DeviceError)
    assert "hrProcessorLoad.196608 = -5 is outside 0..100" in str(error)


# ---------------------------------------------------------------------------------------
# an agent without ifXTable: 32-bit counters, ifDescr names, unknown speed


def test_no_hc_counters_falls_back_to_32_bit_and_says_so_once(legacy_snmpd: Snmpd) -> None:
    out_oid = f"{IF_OUT_OCTETS}.{LO}"

    async def scenario() -> tuple[list[Reading], dict[str, str], list[Reading]]:
        source = config(legacy_snmpd).build()
        try:
            first = await source.read()
            theirs = legacy_snmpd.get(out_oid, f"{IF_IN_OCTETS}.{LO}", f"{IF_DESCR}.{LO}")
            return first, theirs, await source.read()
        finally:
            await source.close()

    with capture_logs() as logs:
        first, theirs, second = asyncio.run(scenario())
    assert theirs[f"{IF_DESCR}.{LO}"] == "lo"  # found by ifDescr: this agent has no ifName
    for readings in (first, second):
        spec = reading(readings, "if_in_octets").metric
        assert spec.modulus == float(COUNTER32_MODULUS)
        # The counter at the wrap point is passed on as is.
        assert value(readings, "if_in_octets") == int(theirs[f"{IF_IN_OCTETS}.{LO}"])
        assert value(readings, "if_in_octets") == COUNTER32_MODULUS - 1
        assert "if_counter_discontinuity_s" not in metrics_of(readings)
    assert value(first, "if_out_octets") <= int(theirs[out_oid]) <= value(second, "if_out_octets")
    notices = [e for e in logs if e["event"].startswith("ports fall back to 32-bit")]
    assert len(notices) == 1 and notices[0]["ports"] == ["lo"]


def test_unknown_line_rate_is_flagged_and_logged_once(legacy_snmpd: Snmpd) -> None:
    assert legacy_snmpd.get(f"{IF_SPEED}.{LO}")[f"{IF_SPEED}.{LO}"] == "0"

    async def scenario() -> list[list[Reading]]:
        source = config(legacy_snmpd).build()
        try:
            return [await source.read(), await source.read()]
        finally:
            await source.close()

    with capture_logs() as logs:
        reads = asyncio.run(scenario())
    for readings in reads:
        assert "if_speed_bps" not in metrics_of(readings)
        assert value(readings, "if_speed_unknown") == 1
    assert len([e for e in logs if e["event"].startswith("line rate unknown")]) == 1


@pytest.mark.parametrize(
    "override",
    [25e9, {"lo": 40e9}, {str(LO): 100e9}],
    ids=["global", "by-name", "by-index"],
)
def test_speed_override_gives_the_line_rate(legacy_snmpd: Snmpd, override: Any) -> None:
    expected = override if isinstance(override, float) else next(iter(override.values()))
    readings = read_once(
        legacy_snmpd, interfaces={"if_names": ["lo"], "speed_override_bps": override}
    )
    assert value(readings, "if_speed_bps") == expected
    assert value(readings, "if_speed_unknown") == 0


def test_too_small_pdus_still_read_everything(snmpd: Snmpd) -> None:
    # One OID per GET: the port's five OIDs and sysUpTime go in six PDUs.
    readings = read_once(snmpd, max_oids_per_request=1)
    assert {"if_in_octets", "if_out_octets", "if_speed_unknown"} <= metrics_of(readings)


# ---------------------------------------------------------------------------------------
# pure functions


def ports() -> dict[int, Port]:
    """A small switch: two uplinks by alias, one port known only by ifDescr."""
    return build_ports(
        {1: "Eth1/1", 2: "Eth1/49", 3: "Eth1/50", 5: ""},
        {1: "Ethernet1/1", 2: "Ethernet1/49", 3: "Ethernet1/50", 5: "mgmt0"},
        {2: "uplink to spine-1", 3: "UPLINK to spine-2", 1: "server r1"},
    )


def test_select_by_name_alias_index_union_in_index_order() -> None:
    chosen, missing = select_ports(ports(), ["Eth1/50"], r"(?i)^uplink", [1])
    assert [p.index for p in chosen] == [1, 2, 3]
    assert missing == []


def test_names_fall_back_to_ifdescr_only_when_no_ifname_matches() -> None:
    chosen, _ = select_ports(ports(), ["mgmt0", "Ethernet1/49"])
    assert [(p.index, p.name) for p in chosen] == [(2, "Eth1/49"), (5, "mgmt0")]
    both = build_ports({1: "x", 2: "y"}, {1: "y", 2: "z"}, {})
    chosen, _ = select_ports(both, ["y"])  # ifName y (index 2) wins over ifDescr y (index 1)
    assert [p.index for p in chosen] == [2]


def test_alias_pattern_is_searched_case_sensitively_unless_asked() -> None:
    chosen, _ = select_ports(ports(), alias_pattern="uplink")
    assert [p.index for p in chosen] == [2]
    chosen, missing = select_ports(ports(), alias_pattern=re.compile("^nothing"))
    assert chosen == [] and missing == ["if_alias_pattern '^nothing'"]


def test_selectors_that_find_nothing_are_reported() -> None:
    chosen, missing = select_ports(ports(), ["Eth1/1", "Eth9/9"], None, [1, 77])
    assert [p.index for p in chosen] == [1]
    assert missing == ["if_name 'Eth9/9'", "if_index 77"]


def test_describe_names_stops_at_the_limit() -> None:
    many = build_ports({i: f"p{i}" for i in range(1, 31)}, {}, {})
    text = describe_names(many, limit=20)
    assert text.startswith("p1 (1), p2 (2)") and text.endswith("p20 (20) and 10 more")
    assert describe_names({}) == "none"
    assert ports()[5].name == "mgmt0" and Port(9).name == "if9"


def test_merge_prefers_hc_counters_and_falls_back_per_pair() -> None:
    hc = {f"{IF_HC_IN_OCTETS}.7": 2**40, f"{IF_HC_OUT_OCTETS}.7": 5}
    narrow = {f"{IF_IN_OCTETS}.7": 11, f"{IF_OUT_OCTETS}.7": 12}
    assert merge_counters({**hc, **narrow}, 7) == (2**40, 5, COUNTER64_MODULUS)
    half = {f"{IF_HC_IN_OCTETS}.7": 1, f"{IF_HC_OUT_OCTETS}.7": None, **narrow}
    assert merge_counters(half, 7) == (11, 12, COUNTER32_MODULUS)
    assert merge_counters({f"{IF_IN_OCTETS}.7": 1}, 7) is None
    assert has_wide_counters(hc, 7) and not has_wide_counters(half, 7)


def test_port_oids_ask_counters_of_the_chosen_width_and_both_speeds() -> None:
    assert port_oids(3, True) == (
        f"{IF_HC_IN_OCTETS}.3",
        f"{IF_HC_OUT_OCTETS}.3",
        f"{IF_HIGH_SPEED}.3",
        f"{IF_SPEED}.3",
        f"{IF_COUNTER_DISCONTINUITY_TIME}.3",
    )
    assert port_oids(3, False)[:2] == (f"{IF_IN_OCTETS}.3", f"{IF_OUT_OCTETS}.3")


@pytest.mark.parametrize(
    ("high", "speed", "expected"),
    [
        (100_000, 2**32 - 1, 100e9),  # 100G: ifSpeed saturated, ifHighSpeed counts
        (10, 10_000_000, 10e6),
        (0, 512_000, 512e3),  # below 1 Mbit/s ifHighSpeed rounds to 0
        (None, 1_000_000_000, 1e9),  # no ifXTable
        (None, 2**32 - 1, None),  # "faster than 4.29G", but how fast is unknown
        (0, 0, None),
        (None, None, None),
    ],
)
def test_line_rate(high: int | None, speed: int | None, expected: float | None) -> None:
    assert line_rate_bps(high, speed) == expected


def test_mean_processor_load() -> None:
    assert mean_processor_load({1: 10, 2: 30, 3: None}) == 20
    with pytest.raises(ValueError, match=r"hrProcessorLoad\.2 = 101 is outside 0\.\.100"):
        mean_processor_load({1: 10, 2: 101})
    with pytest.raises(ValueError, match="no processor answered"):
        mean_processor_load({1: None})


@given(
    st.dictionaries(st.integers(1, 500), st.text(max_size=8), max_size=30),
    st.lists(st.integers(1, 600), max_size=10),
)
def test_selection_by_index_is_exactly_the_rows_that_exist(
    names: dict[int, str], wanted: list[int]
) -> None:
    table = build_ports(names, {}, {})
    chosen, missing = select_ports(table, if_indexes=wanted)
    assert [p.index for p in chosen] == sorted(set(wanted) & set(names))
    assert missing == [f"if_index {i}" for i in wanted if i not in names]


# ---------------------------------------------------------------------------------------
# config


BASE: dict[str, Any] = {"type": "snmp", "id": "sw", "host": "10.0.0.2"}
SWITCH: dict[str, Any] = {**BASE, "community": "c0mmunity", "interfaces": {"if_indexes": [1]}}
V3: dict[str, Any] = {
    **BASE,
    "version": "3",
    "username": "dcmeter",
    "auth_password": "auth-secret-1",
    "priv_password": "priv-secret-1",
    "interfaces": {"if_names": ["Eth1/49"]},
}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({**BASE, "interfaces": {"if_indexes": [1]}}, "version 2c needs community"),
        ({**SWITCH, "username": "u"}, "username: only for version 3"),
        ({**SWITCH, "interfaces": None}, "a switch needs interfaces"),
        ({**SWITCH, "interfaces": {"if_names": []}}, "a switch needs interfaces"),
        ({**SWITCH, "interfaces": {"if_alias_pattern": "(["}}, "not a valid regular expression"),
        ({**SWITCH, "interfaces": {"if_indexes": [1], "speed_override_bps": -1}}, "greater than 0"),
        ({**SWITCH, "interfaces": {"if_indexes": [0]}}, "greater than or equal to 1"),
        ({**SWITCH, "port": 0}, "greater than or equal to 1"),
        ({**SWITCH, "retries": 9}, "less than or equal to 5"),
        ({**SWITCH, "colour": "red"}, "Extra inputs are not permitted"),
        ({**V3, "username": None}, "version 3 needs username"),
        ({**V3, "priv_password": None}, "authPriv needs priv_password"),
        ({**V3, "security_level": "authNoPriv"}, "priv_password: not used at security_level"),
        ({**V3, "auth_password": "short"}, "auth_password: at least 8 characters"),
        ({**V3, "community": "c"}, "community: only for version 2c"),
        ({**V3, "auth_protocol": "SHA-1"}, "'MD5', 'SHA', 'SHA-224'"),
        ({**V3, "priv_protocol": "AES256"}, "'AES-256'"),
    ],
)
def test_bad_config_says_what_is_wrong(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=re.escape(message)):
        SnmpConfig.model_validate(fields)


def test_good_configs_and_their_defaults() -> None:
    switch = SnmpConfig.model_validate(SWITCH)
    assert (switch.port, switch.version, switch.retries, switch.role) == (161, "2c", 1, "switch")
    v3cfg = SnmpConfig.model_validate(V3)
    assert (v3cfg.security_level, v3cfg.auth_protocol, v3cfg.priv_protocol) == (
        "authPriv",
        "SHA",
        "AES",
    )
    storage = SnmpConfig.model_validate({**BASE, "community": "c", "role": "storage"})
    assert storage.interfaces is None
    plain = SnmpConfig.model_validate(
        {**V3, "security_level": "noAuthNoPriv", "auth_password": None, "priv_password": None}
    )
    assert plain.username == "dcmeter"


def test_secrets_stay_out_of_repr_and_dumps() -> None:
    for cfg in (SnmpConfig.model_validate(SWITCH), SnmpConfig.model_validate(V3)):
        shown = repr(cfg) + cfg.model_dump_json() + str(cfg.model_dump())
        for secret in ("c0mmunity", "auth-secret-1", "priv-secret-1"):
            assert secret not in shown


def test_loading_the_config_does_not_import_pysnmp() -> None:
    code = (
        "import sys; from dcmeter.agent.sources.snmp import SnmpConfig; "
        f"SnmpConfig.model_validate({SWITCH!r}).build(); "
        "assert not [m for m in sys.modules if m.startswith('pysnmp')], 'pysnmp imported'"
    )
    root = Path(__file__).resolve().parents[3]
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=root, capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stderr
