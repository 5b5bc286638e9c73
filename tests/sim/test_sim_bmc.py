"""The simulated BMC against real IPMI clients: python-ipmi's rmcpplus interface and ipmitool.

Corners no full client reaches (a wrong RAKP 3 code, a tampered or replayed message, an idle
session) are driven by a minimal console built from python-ipmi's own RMCP+ framing.
"""

from __future__ import annotations

import hmac
import re
import shutil
import socket
import struct
import subprocess
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyipmi
import pyipmi.interfaces
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pyipmi.errors import (
    AuthenticationError,
    CompletionCodeError,
    MessageStatusCodeError,
    RetryError,
)
from pyipmi.interfaces import rmcpplus as R

from dcmeter.agent.sources import ipmi_compat
from dcmeter.sim.bmc import PowerReading, SimBmc
from dcmeter.sim.loop import LoopThread

READING = PowerReading(312.4, 120.0, 455.6, 298.0, period_s=5.0)


class Power:
    """A power callback whose reading a test changes between reads."""

    def __init__(self, reading: PowerReading = READING) -> None:
        self.reading = reading

    def __call__(self) -> PowerReading:
        return self.reading


@pytest.fixture
def sim() -> Iterator[LoopThread]:
    """An event loop in a thread; every BMC served from it stops at the end of the test."""
    with LoopThread() as loop:
        yield loop


@pytest.fixture
def spec_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make python-ipmi derive K1/K2 from 20-byte constants, as real BMCs do.

    python-ipmi 0.6.1 pads the constants to the digest size (32 bytes for SHA-256); ipmitool,
    FreeIPMI and OpenBMC use 20 bytes for every suite, and so does the simulator. For SHA-1
    (suites 1-3) both are the same. The ipmi source applies the same correction
    (agent/sources/ipmi_compat.py). See test_python_ipmi_sha256_keys_differ_from_real_bmcs.
    """
    monkeypatch.setattr(R.SessionKeys, "__init__", ipmi_compat.spec_keys)


@pytest.fixture
def python_ipmi_keys(monkeypatch: pytest.MonkeyPatch) -> None:
    """python-ipmi's own key derivation, even where the ipmi source has already patched it."""
    monkeypatch.setattr(R.SessionKeys, "__init__", ipmi_compat.python_ipmi_keys())


def connect(
    port: int,
    suite: int | None = 3,
    user: str = "admin",
    password: str = "secret",
    timeout: float = 2.0,
) -> pyipmi.Ipmi:
    """An established python-ipmi rmcpplus session to 127.0.0.1:port (no keep-alive thread)."""
    intf = pyipmi.interfaces.create_interface("rmcpplus", cipher_suite=suite, keep_alive_interval=0)
    ipmi = pyipmi.create_connection(intf)
    ipmi.session.set_session_type_rmcp("127.0.0.1", port=port)
    ipmi.session.set_auth_type_user(user, password)
    ipmi.target = pyipmi.Target(ipmb_address=0x20)
    intf.open()
    intf.set_timeout(timeout)
    try:
        ipmi.session.establish()
    except BaseException:
        intf.close()
        raise
    return ipmi


def watts(reading: PowerReading) -> tuple[int, int, int, int]:
    """What the BMC must send for a reading: whole watts."""
    return (
        round(reading.current_w),
        round(reading.minimum_w),
        round(reading.maximum_w),
        round(reading.average_w),
    )


# --- python-ipmi ---------------------------------------------------------------------------


def test_python_ipmi_reads_the_callback_and_follows_changes(sim: LoopThread) -> None:
    power = Power()
    bmc = SimBmc(power)
    ipmi = connect(sim.serve(bmc))
    try:
        first = ipmi.get_power_reading(1)
        assert (first.current_power, first.minimum_power, first.maximum_power, first.average_power) == watts(READING)
        assert first.period == 5000
        assert first.reading_state & 0x40
        assert abs(first.timestamp - time.time()) < 3600  # the BMC's clock, in Unix seconds

        power.reading = PowerReading(1234.0, 1000.0, 1500.0, 1250.0, period_s=60.0)
        second = ipmi.get_power_reading(1)
        assert (second.current_power, second.minimum_power, second.maximum_power, second.average_power) == (1234, 1000, 1500, 1250)
        assert second.period == 60000
        version = ipmi.get_device_id().ipmi_version
        assert (version.major, version.minor) == (2, 0)
    finally:
        ipmi.close()
    # Both reads went through one session, and closing it released it.
    assert bmc.sessions_opened == 1
    assert bmc.power_reads == 2
    assert bmc.active_sessions == 0


@pytest.mark.parametrize("suite", [1, 2, 3, 15, 16, 17, None])
def test_python_ipmi_every_suite(sim: LoopThread, spec_keys: None, suite: int | None) -> None:
    port = sim.serve(SimBmc(Power(PowerReading(700.0, 650.0, 750.0, 701.0))))
    ipmi = connect(port, suite)
    try:
        assert ipmi.get_power_reading(1).current_power == 700
    finally:
        ipmi.close()


def test_python_ipmi_default_order_falls_back_to_suite_3(sim: LoopThread) -> None:
    # A BMC offering only suite 3 declines 17 with a status python-ipmi treats as "try the
    # next suite"; no key patch is needed because suite 3 uses SHA-1.
    port = sim.serve(SimBmc(Power(), cipher_suites=(3,)))
    ipmi = connect(port, suite=None)
    try:
        assert ipmi.get_power_reading(1).current_power == 312
    finally:
        ipmi.close()


def test_unsupported_suite_is_declined(sim: LoopThread) -> None:
    port = sim.serve(SimBmc(Power(), cipher_suites=(3,)))
    with pytest.raises(MessageStatusCodeError) as e:
        connect(port, suite=17)
    assert e.value.msc == 0x04  # invalid authentication algorithm (SHA-256 not offered)


def test_python_ipmi_sha256_keys_differ_from_real_bmcs(sim: LoopThread, python_ipmi_keys: None) -> None:
    """python-ipmi 0.6.1, unpatched, cannot use suite 17 with a BMC that keys like ipmitool.

    The handshake succeeds (it needs no K1), then the first message is signed with a K1 the
    BMC does not derive, so the BMC drops it as a failed integrity check. If this test starts
    failing, python-ipmi was fixed and the `spec_keys` patch (and the ipmi source's) can go.
    """
    port = sim.serve(SimBmc(Power()))
    with pytest.raises(RetryError):
        connect(port, suite=17, timeout=0.3)


def test_wrong_password_and_user_rejected_by_python_ipmi(sim: LoopThread) -> None:
    bmc = SimBmc(Power())
    port = sim.serve(bmc)
    with pytest.raises(AuthenticationError):
        connect(port, password="wrong")
    with pytest.raises(MessageStatusCodeError) as e:
        connect(port, user="root")
    assert e.value.msc == 0x0D  # unauthorized name
    assert bmc.sessions_opened == 0
    # python-ipmi tells the BMC it gave up (RAKP 3 with an error), so nothing stays half open.
    assert bmc.held_sessions == 0


def test_no_dcmi_answers_invalid_command(sim: LoopThread) -> None:
    ipmi = connect(sim.serve(SimBmc(Power(), dcmi=False)))
    try:
        with pytest.raises(CompletionCodeError) as e:
            ipmi.get_power_reading(1)
        assert e.value.cc == 0xC1
        assert ipmi.get_device_id().device_id == 0x20  # the BMC itself still answers
    finally:
        ipmi.close()


def test_inactive_reading_and_out_of_range_values(sim: LoopThread) -> None:
    power = Power(PowerReading(0.0, 0.0, 0.0, 0.0, active=False))
    ipmi = connect(sim.serve(SimBmc(power)))
    try:
        assert not ipmi.get_power_reading(1).reading_state & 0x40
        power.reading = PowerReading(float("nan"), 1.0, 2.0, 3.0)
        assert not ipmi.get_power_reading(1).reading_state & 0x40
        power.reading = PowerReading(-5.0, 70000.0, 400.4, 400.6)
        r = ipmi.get_power_reading(1)
        assert (r.current_power, r.minimum_power, r.maximum_power, r.average_power) == (0, 65535, 400, 401)
        assert r.reading_state & 0x40
    finally:
        ipmi.close()


def test_failing_power_sensor_answers_not_in_present_state(sim: LoopThread) -> None:
    def broken() -> PowerReading:
        raise OSError("sensor not ready")

    ipmi = connect(sim.serve(SimBmc(broken)))
    try:
        with pytest.raises(CompletionCodeError) as e:
            ipmi.get_power_reading(1)
        assert e.value.cc == 0xD5
    finally:
        ipmi.close()


def test_other_commands_get_invalid_command(sim: LoopThread) -> None:
    ipmi = connect(sim.serve(SimBmc(Power())))
    try:
        # Get Chassis Status (netfn 0, cmd 1) and DCMI Get Power Limit (0x2C/0x03)
        assert ipmi.send_raw(0, 0x00, b"\x01")[0] == 0xC1
        assert ipmi.send_raw(0, 0x2C, b"\x03\xdc\x00\x00")[0] == 0xC1
        caps = ipmi.get_dcmi_capabilities(1)
        assert (caps.specification_conformance.major, caps.specification_conformance.minor) == (1, 5)
        assert caps.parameter_data[1] & 0x01  # power management supported
    finally:
        ipmi.close()


def test_200_bmcs_in_one_loop(sim: LoopThread) -> None:
    bmcs = [SimBmc(Power(PowerReading(1000 + i, 900, 1100 + i, 1000, 1.0))) for i in range(200)]
    ports = sim.serve_many(bmcs)
    assert len(set(ports)) == 200

    def read(port: int) -> int:
        ipmi = connect(port, timeout=10.0)
        try:
            return int(ipmi.get_power_reading(1).current_power)
        finally:
            ipmi.close()

    with ThreadPoolExecutor(16) as pool:
        values = list(pool.map(read, ports))
    assert values == [1000 + i for i in range(200)]
    assert all(b.sessions_opened == 1 and b.active_sessions == 0 for b in bmcs)


# --- ipmitool ------------------------------------------------------------------------------


def ipmitool(port: int, *args: str, suite: str | None = "3", password: str = "secret", user: str = "admin") -> subprocess.CompletedProcess[str]:
    """Run ipmitool -I lanplus against 127.0.0.1:port (1 s timeout, 1 retry)."""
    exe = shutil.which("ipmitool")
    assert exe, "ipmitool is not installed (Debian package ipmitool)"
    cmd = [exe, "-I", "lanplus", "-H", "127.0.0.1", "-p", str(port), "-U", user, "-P", password, "-N", "1", "-R", "1"]
    if suite is not None:
        cmd += ["-C", suite]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=60)


def decode_raw_power_reading(stdout: str) -> tuple[int, ...]:
    """ipmitool raw's hex bytes of a Get Power Reading response, decoded (no completion code)."""
    data = bytes.fromhex("".join(stdout.split()))
    group, *values = struct.unpack("<BHHHHIIB", data)
    assert group == 0xDC
    return tuple(values)


def test_ipmitool_sees_the_period_move_every_poll(sim: LoopThread) -> None:
    """period_step_s: each answered reading's period is one step more (5, 7, 9 s here), as
    `ipmitool dcmi power reading` prints it."""
    port = sim.serve(SimBmc(Power(), period_step_s=2.0))
    seen = []
    for _ in range(3):
        p = ipmitool(port, "dcmi", "power", "reading")
        assert p.returncode == 0, p.stderr
        seen += re.findall(r"Sampling period:\s+(\d+) Seconds", p.stdout)
    assert [int(x) for x in seen] == [5, 7, 9]


@pytest.mark.parametrize("suite", ["3", "17", None])
def test_ipmitool_raw_power_reading_equals_callback(sim: LoopThread, suite: str | None) -> None:
    power = Power()
    port = sim.serve(SimBmc(power))
    p = ipmitool(port, "raw", "0x2c", "0x02", "0xdc", "0x01", "0x00", "0x00", suite=suite)
    assert p.returncode == 0, p.stderr
    current, minimum, maximum, average, _, period_ms, state = decode_raw_power_reading(p.stdout)
    assert (current, minimum, maximum, average) == watts(READING)
    assert period_ms == 5000 and state == 0x40

    power.reading = PowerReading(88.0, 80.0, 99.0, 90.0, period_s=1.0, active=False)
    p = ipmitool(port, "raw", "0x2c", "0x02", "0xdc", "0x01", "0x00", "0x00", suite=suite)
    assert p.returncode == 0, p.stderr
    assert decode_raw_power_reading(p.stdout)[:4] == (88, 80, 99, 90)
    assert decode_raw_power_reading(p.stdout)[6] == 0x00


def test_ipmitool_dcmi_power_reading_and_mc_info(sim: LoopThread) -> None:
    bmc = SimBmc(Power())
    port = sim.serve(bmc)
    p = ipmitool(port, "dcmi", "power", "reading")
    assert p.returncode == 0, p.stderr
    p = ipmitool(port, "mc", "info")
    assert p.returncode == 0, p.stderr
    assert "IPMI Version              : 2.0" in p.stdout
    p = ipmitool(port, "dcmi", "discover")
    assert p.returncode == 0, p.stderr
    assert bmc.sessions_opened == 3 and bmc.active_sessions == 0  # ipmitool closed each one


def test_wrong_password_and_user_rejected_by_ipmitool(sim: LoopThread) -> None:
    bmc = SimBmc(Power())
    port = sim.serve(bmc)
    p = ipmitool(port, "-v", "mc", "info", password="wrong")
    assert p.returncode != 0
    assert "RAKP 2 HMAC is invalid" in p.stderr
    p = ipmitool(port, "-v", "mc", "info", user="root")
    assert p.returncode != 0
    assert "unauthorized name" in p.stderr
    assert bmc.sessions_opened == 0


# --- protocol corners, with a minimal console built from python-ipmi's framing -------------


class Console:
    """Just enough of an RMCP+ console (suite 3) to send what full clients never send."""

    def __init__(self, port: int, password: bytes = b"secret") -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.connect(("127.0.0.1", port))
        self.password = password
        self.suite = R.CIPHER_SUITES[3]
        self.console_id = 0x11223344
        self.managed_id = 0
        self.keys: R.SessionKeys | None = None
        self.seq = 0
        self.rq_seq = 0

    def close(self) -> None:
        self.sock.close()

    def send(self, payload_type: int, payload: bytes, seq: int | None = None, tamper: bool = False) -> None:
        """Send a payload, in the session once there is one; `seq` overrides the counter."""
        if self.keys is None:
            pdu = R.pack_rmcpplus(payload_type, payload)
        else:
            if seq is None:
                self.seq += 1
                seq = self.seq
            pdu = R.pack_rmcpplus(payload_type, payload, self.managed_id, seq, self.keys)
        if tamper:
            pdu = pdu[:-1] + bytes([pdu[-1] ^ 1])
        self.sock.send(b"\x06\x00\xff\x07" + pdu)

    def receive(self, timeout: float = 5.0) -> tuple[int, bytes] | None:
        """(payload type, payload) of the next answer; None if the BMC stays silent."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(4096)
        except TimeoutError:
            return None
        payload_type, _, _, payload = R.unpack_rmcpplus(data[4:], self.keys)
        return payload_type, payload

    def open_session(self) -> int:
        """Open Session Request for suite 3; returns the status."""
        request = struct.pack("<BBxxI", 1, 4, self.console_id)
        for kind, algorithm in enumerate((self.suite.authentication, self.suite.integrity, self.suite.confidentiality)):
            request += struct.pack("<BxxBBxxx", kind, 8, algorithm)
        self.send(R.PAYLOAD_TYPE_OPEN_SESSION_REQUEST, request)
        answer = self.receive()
        assert answer is not None and answer[0] == R.PAYLOAD_TYPE_OPEN_SESSION_RESPONSE
        if answer[1][1] == 0:
            self.managed_id = struct.unpack_from("<I", answer[1], 8)[0]
        return answer[1][1]

    def rakp(self, corrupt_rakp3: bool = False) -> int:
        """RAKP 1-4 as admin; returns the RAKP 4 status and keeps the keys on success."""
        rm = bytes(range(16))
        role = bytes([0x14, 5]) + b"admin"
        self.send(R.PAYLOAD_TYPE_RAKP_1, struct.pack("<BxxxI16sBxxB", 2, self.managed_id, rm, 0x14, 5) + b"admin")
        answer = self.receive()
        assert answer is not None and answer[0] == R.PAYLOAD_TYPE_RAKP_2 and answer[1][1] == 0
        rc, guid = answer[1][8:24], answer[1][24:40]
        sid_m = struct.pack("<I", self.console_id)
        code = hmac.new(self.password, rc + sid_m + role, "sha1").digest()
        if corrupt_rakp3:
            code = bytes([code[0] ^ 0xFF]) + code[1:]
        self.send(R.PAYLOAD_TYPE_RAKP_3, struct.pack("<BBxxI", 3, 0, self.managed_id) + code)
        answer = self.receive()
        assert answer is not None and answer[0] == R.PAYLOAD_TYPE_RAKP_4
        if answer[1][1] == 0:
            sik = hmac.new(self.password, rm + rc + role, "sha1").digest()
            icv = hmac.new(sik, rm + struct.pack("<I", self.managed_id) + guid, "sha1").digest()[:12]
            assert answer[1][8:] == icv
            self.keys = R.SessionKeys(self.suite, sik)
        return answer[1][1]

    def device_id(self, seq: int | None = None, tamper: bool = False, silent: bool = False) -> bytes | None:
        """Get Device ID in the session; the response from the completion code on, or None.

        `silent`: silence is expected, so wait for it only briefly.
        """
        self.rq_seq = (self.rq_seq + 1) % 64
        head = bytes([0x20, 0x06 << 2])
        rest = bytes([0x81, self.rq_seq << 2, 0x01])
        msg = head + bytes([-sum(head) & 0xFF]) + rest + bytes([-sum(rest) & 0xFF])
        self.send(R.PAYLOAD_TYPE_IPMI, msg, seq=seq, tamper=tamper)
        answer = self.receive(timeout=0.5 if silent else 5.0)
        return None if answer is None else answer[1][6:-1]


@pytest.fixture
def console_to() -> Iterator[Any]:
    consoles: list[Console] = []

    def make(port: int, **kw: Any) -> Console:
        consoles.append(Console(port, **kw))
        return consoles[-1]

    yield make
    for c in consoles:
        c.close()


def test_wrong_rakp3_code_gets_invalid_integrity_check_value(sim: LoopThread, console_to: Any) -> None:
    bmc = SimBmc(Power())
    console = console_to(sim.serve(bmc))
    assert console.open_session() == 0
    assert console.rakp(corrupt_rakp3=True) == 0x0F
    assert bmc.sessions_opened == 0 and bmc.held_sessions == 0


def test_tampered_and_replayed_messages_are_dropped(sim: LoopThread, console_to: Any) -> None:
    console = console_to(sim.serve(SimBmc(Power())))
    assert console.open_session() == 0 and console.rakp() == 0
    first = console.device_id()
    assert first is not None and first[0] == 0
    assert console.device_id(tamper=True, silent=True) is None  # integrity check fails
    assert console.device_id(seq=1, silent=True) is None  # sequence number 1 was used: a replay
    answer = console.device_id()  # the session is still good
    assert answer is not None and answer[0] == 0


def test_idle_session_times_out(sim: LoopThread, console_to: Any) -> None:
    now = [1000.0]
    bmc = SimBmc(Power(), clock=lambda: now[0])
    console = console_to(sim.serve(bmc))
    assert console.open_session() == 0 and console.rakp() == 0
    now[0] += 59.0
    assert console.device_id() is not None  # 59 s idle: still open, and the clock restarts
    now[0] += 60.5
    assert console.device_id(silent=True) is None
    assert bmc.active_sessions == 0


def test_session_table_full(sim: LoopThread, console_to: Any) -> None:
    port = sim.serve(SimBmc(Power(), max_sessions=2))
    assert console_to(port).open_session() == 0
    assert console_to(port).open_session() == 0
    assert console_to(port).open_session() == 0x01  # insufficient resources


@settings(max_examples=300, deadline=None)
@given(
    prefix=st.sampled_from([b"", b"\x06\x00\xff\x07", b"\x06\x00\xff\x07\x06", b"\x06\x00\xff\x07\x00", b"\x06\x00\xff\x06"]),
    rest=st.binary(max_size=80),
)
def test_garbage_never_raises(prefix: bytes, rest: bytes) -> None:
    bmc = SimBmc(Power(), cipher_suites=(0, 3))
    answer = bmc.handle(prefix + rest)
    assert answer is None or answer[:2] == b"\x06\x00"


def test_loop_thread_serves_other_simulators_too(sim: LoopThread) -> None:
    from pymodbus.client import ModbusTcpClient

    from dcmeter.sim.meters import SimMeter

    bmc_port = sim.serve(SimBmc(Power()))
    meter_port = sim.serve(SimMeter("eastron_sdm630", lambda: {"power_w": 4321.0}))
    client = ModbusTcpClient("127.0.0.1", port=meter_port, timeout=5)
    assert client.connect()
    try:
        regs = client.read_input_registers(0x0034, count=2, device_id=1).registers
        assert client.convert_from_registers(regs, data_type=client.DATATYPE.FLOAT32) == 4321.0
    finally:
        client.close()
    ipmi = connect(bmc_port)
    try:
        assert ipmi.get_power_reading(1).current_power == 312
    finally:
        ipmi.close()


@pytest.mark.parametrize("suite", [17, None])
def test_ipmi_source_reads_a_sha256_bmc(sim: LoopThread, suite: int | None) -> None:
    """The ipmi source corrects python-ipmi's SHA-256 keys, so suite 17 works as with ipmitool."""
    import asyncio

    from dcmeter.agent.sources.ipmi import IpmiConfig

    port = sim.serve(SimBmc(Power(PowerReading(431.0, 400.0, 470.0, 433.0)), cipher_suites=(17,)))
    source = IpmiConfig.model_validate(
        {"id": "bmc", "type": "ipmi", "host": "127.0.0.1", "port": port, "username": "admin",
         "password": "secret", "cipher_suite": suite, "privilege": "administrator", "timeout_s": 3}
    ).build()

    async def read() -> dict[str, float]:
        try:
            return {r.metric.name: r.value for r in await source.read()}
        finally:
            await source.close()

    values = asyncio.run(read())
    assert values["power_w"] == 431 and values["power_avg_w"] == 433


def test_ipmi_source_reads_the_bmcs_device_id_once_per_session(sim: LoopThread) -> None:
    """Get Device ID of the simulated BMC (bmc.py): device 0x20, revision 1, firmware 1.00,
    manufacturer 0, product 1; read after the first good read of the session."""
    import asyncio

    from dcmeter.agent.sources.ipmi import IpmiConfig

    bmc = SimBmc(Power(PowerReading(431.0, 400.0, 470.0, 433.0)))
    port = sim.serve(bmc)
    source = IpmiConfig.model_validate(
        {"id": "bmc", "type": "ipmi", "host": "127.0.0.1", "port": port, "username": "admin",
         "password": "secret", "timeout_s": 3}
    ).build()

    async def reads() -> tuple[dict[str, str], dict[str, str]]:
        try:
            before = dict(source.info.device)
            for _ in range(3):
                await source.read()
            return before, dict(source.info.device)
        finally:
            await source.close()

    before, after = asyncio.run(reads())
    assert before == {}
    assert after == {"device_id": "32", "firmware": "1.00", "manufacturer_id": "0",
                     "product_id": "1", "revision": "1"}
