"""The ipmi source against a real BMC: OpenIPMI's ipmi_sim with a DCMI plug-in built here.

Cross-checks go through Debian's ipmitool (`raw` DCMI bytes, `sensor reading`, `session
info`), an IPMI client independent of python-ipmi.
"""

from __future__ import annotations

import asyncio
import logging
import re
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError
from structlog.testing import capture_logs

from dcmeter.agent.samples import Reading
from dcmeter.agent.sources import DeviceError, TargetUnreachable, config_class
from dcmeter.agent.sources.ipmi import IpmiConfig, IpmiSource
from dcmeter.base.configfile import ConfigError
from tests.peers.ipmisim import ADMIN, READER, SENSORS, IpmiSim, build_plugin, free_udp_port

WRONG_PASSWORD = "Wr0ng-Pa55"


@pytest.fixture(scope="session")
def dcmi_plugin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The DCMI plug-in for ipmi_sim, compiled once per test session."""
    return build_plugin(tmp_path_factory.mktemp("ipmi_plugin"))


@pytest.fixture
def bmc(tmp_path: Path, dcmi_plugin: Path) -> Iterator[IpmiSim]:
    """A BMC with DCMI on 127.0.0.1."""
    sim = IpmiSim(tmp_path / "bmc", dcmi_plugin)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


@pytest.fixture
def bmc_no_dcmi(tmp_path: Path) -> Iterator[IpmiSim]:
    """A BMC without DCMI (stock ipmi_sim) whose SDR holds two PSU input power sensors."""
    sim = IpmiSim(tmp_path / "bmc", None)
    sim.start()
    try:
        yield sim
    finally:
        sim.stop()


def config(port: int, **fields: Any) -> IpmiConfig:
    """An ipmi config for 127.0.0.1:port as the admin account (ipmi_sim wants admin for DCMI)."""
    data: dict[str, Any] = {
        "type": "ipmi",
        "id": "bmc-1",
        "host": "127.0.0.1",
        "port": port,
        "username": ADMIN[0],
        "password": ADMIN[1],
        "privilege": "administrator",
        "timeout_s": 3.0,
    }
    return IpmiConfig.model_validate({**data, **fields})


def source(port: int, **fields: Any) -> IpmiSource:
    """Build an ipmi source for 127.0.0.1:port."""
    return config(port, **fields).build()


def read_once(src: IpmiSource) -> list[Reading]:
    """One read, then close."""

    async def scenario() -> list[Reading]:
        try:
            return await src.read()
        finally:
            await src.close()

    return asyncio.run(scenario())


def by_metric(readings: list[Reading]) -> dict[str, Reading]:
    """Map metric name -> reading."""
    return {r.metric.name: r for r in readings}


def fails_with(src: IpmiSource, error: type[Exception]) -> str:
    """Read once, expecting `error`; return its message."""
    with pytest.raises(error) as info:
        read_once(src)
    return str(info.value)


# --- DCMI -------------------------------------------------------------------------------


def test_reads_dcmi_power_with_its_averaging_period(bmc: IpmiSim) -> None:
    bmc.set_power(312, minimum=281, maximum=355, average=298, period_ms=5000)
    src = source(bmc.port)
    readings = by_metric(read_once(src))
    assert {n: r.value for n, r in readings.items()} == {
        "power_w": 312.0,
        "power_avg_w": 298.0,
        "power_min_w": 281.0,
        "power_max_w": 355.0,
        "power_avg_period_s": 5.0,  # a value, never a label: it changes (docs/sources.md)
    }
    assert all(not r.labels for r in readings.values())
    assert readings["power_avg_period_s"].metric.unit == "s"
    assert all(r.metric.unit == "W" and r.metric.kind == "gauge"
               for n, r in readings.items() if n != "power_avg_period_s")
    assert src.info.protocol == "ipmi"
    assert src.info.address == f"127.0.0.1:{bmc.port}"
    assert src.info.labels == {"point": "it_input", "kind": "compute"}


def test_timestamps_come_from_the_agent_clock(bmc: IpmiSim) -> None:
    ticks = iter(range(10**18, 10**18 + 100))
    src = IpmiSource(config(bmc.port), ADMIN[1], clock=lambda: next(ticks))
    readings = read_once(src)
    assert {r.ts_ns for r in readings} == {10**18}


def test_reading_follows_the_bmc_live(bmc: IpmiSim) -> None:
    src = source(bmc.port)

    async def scenario() -> list[float]:
        seen = []
        for watts in (250, 420, 1337):
            bmc.set_power(watts)
            seen.append(by_metric(await src.read())["power_w"].value)
        await src.close()
        return seen

    assert asyncio.run(scenario()) == [250.0, 420.0, 1337.0]


def test_ipmitool_raw_dcmi_bytes_agree_with_the_source(bmc: IpmiSim) -> None:
    bmc.set_power(507, minimum=400, maximum=612, average=499, period_ms=60000)
    raw = bmc.raw_power_reading()
    readings = by_metric(read_once(source(bmc.port)))
    assert raw["state"] & 0x40
    assert readings["power_w"].value == raw["current"] == 507
    assert readings["power_avg_w"].value == raw["average"] == 499
    assert readings["power_min_w"].value == raw["minimum"] == 400
    assert readings["power_max_w"].value == raw["maximum"] == 612
    assert readings["power_avg_period_s"].value == raw["period_ms"] / 1000 == 60.0


def test_device_identity_agrees_with_ipmitool_mc_info(bmc: IpmiSim) -> None:
    """Get Device ID as the source reports it and as an independent client (`ipmitool mc
    info`) prints it from the same ipmi_sim. The emulator is configured with `mc_add 0x20 0
    no-device-sdrs 0x23 9 8 0x9f 0x1291 0xf02` (tests/peers/ipmisim.py): device id 0,
    revision 0x23 (its low nibble, 3, is the revision), firmware 9 and BCD 08, manufacturer
    0x1291 (4753), product 0xf02 (3842)."""
    info = dict(
        line.split(":", 1) for line in bmc.ipmitool("mc", "info").splitlines()
        if ":" in line and not line.startswith(" ")
    )
    info = {k.strip(): v.strip() for k, v in info.items()}
    src = source(bmc.port)

    async def scenario() -> dict[str, str]:
        try:
            await src.read()
            return dict(src.info.device)
        finally:
            await src.close()

    device = asyncio.run(scenario())
    assert device == {
        "device_id": info["Device ID"], "revision": info["Device Revision"],
        "firmware": info["Firmware Revision"], "manufacturer_id": info["Manufacturer ID"],
        "product_id": info["Product ID"].split()[0],
    }
    # The figures worked out from the emulator's configuration, lest both clients agree on
    # something else: the firmware's minor revision keeps its two BCD digits (9.08, not 9.8).
    assert device == {"device_id": "0", "revision": "3", "firmware": "9.08",
                      "manufacturer_id": "4753", "product_id": "3842"}


def test_inactive_reading_is_an_error_not_zero_watts(bmc: IpmiSim) -> None:
    src = source(bmc.port)

    async def scenario() -> tuple[str, list[Reading]]:
        bmc.set_power(0, active=False)
        try:
            await src.read()
        except DeviceError as exc:
            message = str(exc)
        else:
            raise AssertionError("an inactive reading must not give readings")
        bmc.set_power(275)
        back = await src.read()
        await src.close()
        return message, back

    message, back = asyncio.run(scenario())
    assert "DCMI power reading not active" in message
    assert bmc.raw_power_reading()["state"] & 0x40  # ipmitool sees the active state now
    assert by_metric(back)["power_w"].value == 275.0
    assert src.sessions_opened == 1  # the session survived the error


@pytest.mark.parametrize("suite", [None, 1, 2, 3])
def test_cipher_suites_the_bmc_supports(bmc: IpmiSim, suite: int | None) -> None:
    # ipmi_sim supports suites 1-3 only: None must fall back from 17 to 3.
    bmc.set_power(333)
    assert by_metric(read_once(source(bmc.port, cipher_suite=suite)))["power_w"].value == 333.0


def test_cipher_suite_the_bmc_rejects(bmc: IpmiSim) -> None:
    message = fails_with(source(bmc.port, cipher_suite=17), DeviceError)
    assert "cipher suite" in message and "17" in message


def test_insufficient_privilege_says_what_to_raise(bmc: IpmiSim) -> None:
    src = source(bmc.port, username=READER[0], password=READER[1], privilege="user")
    message = fails_with(src, DeviceError)
    assert "insufficient privilege" in message and "privilege =" in message


# --- sessions ---------------------------------------------------------------------------


def test_session_is_kept_between_reads_and_reopened_after_a_bmc_reset(bmc: IpmiSim) -> None:
    src = source(bmc.port)

    async def reads(n: int) -> list[float]:
        return [by_metric(await src.read())["power_w"].value for _ in range(n)]

    async def scenario() -> None:
        bmc.set_power(260)
        assert await reads(5) == [260.0] * 5
        assert src.sessions_opened == 1
        assert bmc.power_requests() == 5
        # The BMC itself counts our idle session, plus ipmitool's own while it asks.
        assert bmc.active_sessions() == 2

        bmc.restart()  # every session is gone, as after a BMC reset
        bmc.set_power(777)
        assert await reads(1) == [777.0]  # stale session noticed, new one opened at once
        assert src.sessions_opened == 2
        assert bmc.active_sessions() == 2

        await src.close()
        assert bmc.active_sessions() == 1  # close() ended our session on the BMC

    asyncio.run(scenario())


def test_prepare_opens_the_session_the_first_read_then_uses(bmc: IpmiSim) -> None:
    """The start-up phase (agent/startup.py) opens the session; the first read sends only
    its one Get Power Reading on it."""
    src = source(bmc.port)

    async def scenario() -> float:
        await src.prepare()
        assert src.sessions_opened == 1
        assert bmc.power_requests() == 0  # a session, no reading yet
        bmc.set_power(333)
        value = by_metric(await src.read())["power_w"].value
        await src.close()
        return value

    assert asyncio.run(scenario()) == 333.0
    assert src.sessions_opened == 1 and bmc.power_requests() == 1


def test_prepare_of_a_dead_bmc_raises_the_read_error() -> None:
    src = source(free_udp_port(), timeout_s=0.6)
    with pytest.raises(TargetUnreachable):
        asyncio.run(src.prepare())
    assert src.sessions_opened == 0


def test_bmc_down_is_unreachable_then_recovers(bmc: IpmiSim) -> None:
    src = source(bmc.port)

    async def scenario() -> str:
        await src.read()
        bmc.stop()
        try:
            await src.read()
        except TargetUnreachable as exc:
            message = str(exc)
        else:
            raise AssertionError("a stopped BMC must be unreachable")
        bmc.start()
        bmc.set_power(640)
        value = by_metric(await src.read())["power_w"].value
        await src.close()
        assert value == 640.0
        return message

    message = asyncio.run(scenario())
    assert f"127.0.0.1:{bmc.port}" in message
    assert src.sessions_opened == 2


# --- failures ---------------------------------------------------------------------------


def test_wrong_password_is_an_authentication_error_without_the_password(bmc: IpmiSim) -> None:
    message = fails_with(source(bmc.port, password=WRONG_PASSWORD), DeviceError)
    assert "authentication failed" in message and "username and password" in message
    assert WRONG_PASSWORD not in message and ADMIN[1] not in message


def test_unknown_user_is_refused(bmc: IpmiSim) -> None:
    message = fails_with(source(bmc.port, username="nobody"), DeviceError)
    assert "refused the account" in message and "unknown user name" in message
    assert ADMIN[1] not in message


def test_closed_port_is_unreachable() -> None:
    message = fails_with(source(free_udp_port(), timeout_s=0.6), TargetUnreachable)
    assert "refused" in message or "no answer" in message


def test_silent_peer_is_unreachable_within_the_timeout() -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as silent:
        silent.bind(("127.0.0.1", 0))
        port = silent.getsockname()[1]
        src = source(port, timeout_s=0.6)

        with pytest.raises(TargetUnreachable, match=r"no answer within 0\.2 s"):
            asyncio.run(src.read())
        asyncio.run(src.close())


# --- no DCMI: SDR sensors -----------------------------------------------------------------


def wait_sensor(sim: IpmiSim, name: str, value: float) -> None:
    """Wait until ipmitool reads `value` from sensor `name` (ipmi_sim polls every 100 ms)."""
    for _ in range(100):
        out = sim.ipmitool("sensor", "reading", name)
        m = re.search(r"\|\s*([-\d.]+)", out)
        if m and float(m.group(1)) == value:
            return
    raise AssertionError(f"ipmitool never read {value} from {name!r}: {out}")


def test_bmc_without_dcmi_falls_back_to_sdr_sensors_and_says_so_once(
    bmc_no_dcmi: IpmiSim,
) -> None:
    psu1, psu2 = SENSORS[0], SENSORS[1]
    bmc_no_dcmi.set_sensor_raw(psu1.number, 80)
    bmc_no_dcmi.set_sensor_raw(psu2.number, 50)
    wait_sensor(bmc_no_dcmi, psu1.name, 80 * psu1.m)  # ipmitool agrees: 320 W
    wait_sensor(bmc_no_dcmi, psu2.name, 50 * psu2.m)  # 100 W
    src = source(bmc_no_dcmi.port, sdr_sensors=[psu1.name, psu2.number])

    async def scenario() -> list[float]:
        seen = []
        for raw in (None, 90):
            if raw is not None:
                bmc_no_dcmi.set_sensor_raw(psu1.number, raw)
                wait_sensor(bmc_no_dcmi, psu1.name, raw * psu1.m)
            readings = await src.read()
            assert [r.metric.name for r in readings] == ["power_w"]
            assert readings[0].labels == {"sdr_sensors": f"{psu1.name},{psu2.number}"}
            seen.append(readings[0].value)
        await src.close()
        return seen

    with capture_logs() as logs:
        seen = asyncio.run(scenario())
    assert seen == [80 * 4 + 50 * 2, 90 * 4 + 50 * 2]
    notices = [e for e in logs if "falls back to SDR" in e["event"]]
    assert len(notices) == 1 and notices[0]["log_level"] == "info"
    assert notices[0]["source"] == "bmc-1"


def test_bmc_without_dcmi_and_no_sdr_sensors_says_what_to_configure(
    bmc_no_dcmi: IpmiSim,
) -> None:
    message = fails_with(source(bmc_no_dcmi.port), DeviceError)
    assert "no DCMI" in message and "0xC1" in message and "sdr_sensors" in message


def test_unknown_sdr_sensor_lists_the_power_sensors(bmc_no_dcmi: IpmiSim) -> None:
    message = fails_with(source(bmc_no_dcmi.port, sdr_sensors=["Total Power"]), DeviceError)
    assert "'Total Power'" in message
    assert "'PSU1 Input', 'PSU2 Input'" in message and "Inlet Temp" not in message


def test_sdr_sensor_in_other_units_is_refused(bmc_no_dcmi: IpmiSim) -> None:
    message = fails_with(source(bmc_no_dcmi.port, sdr_sensors=["Inlet Temp"]), DeviceError)
    assert "not watts" in message


# --- local interface ----------------------------------------------------------------------


def local_source(device: Path) -> IpmiSource:
    """A source for the host's own BMC through `device`."""
    return IpmiConfig.model_validate(
        {"type": "ipmi", "id": "local-bmc", "interface": "local", "device": str(device)}
    ).build()


def test_local_interface_without_bmc_device_says_how_to_get_one(tmp_path: Path) -> None:
    message = fails_with(local_source(tmp_path / "ipmi0"), TargetUnreachable)
    assert "no BMC device" in message and "modprobe" in message


def test_local_interface_on_something_that_is_no_bmc_device(tmp_path: Path) -> None:
    not_a_device = tmp_path / "ipmi0"
    not_a_device.write_bytes(b"")
    message = fails_with(local_source(not_a_device), TargetUnreachable)
    assert str(not_a_device) in message


# --- configuration ------------------------------------------------------------------------


def test_registry_names_the_ipmi_config() -> None:
    assert config_class("ipmi") is IpmiConfig


@pytest.mark.parametrize(
    ("fields", "complaint"),
    [
        ({"cipher_suite": 4}, "cipher_suite"),
        ({"cipher_suite": 0}, "cipher_suite"),
        ({"password": None}, "exactly one of password, password_file"),
        ({"password_file": "/run/secret"}, "exactly one of password, password_file"),
        ({"host": None}, "needs host"),
        ({"password": "x" * 21}, "at most 20 bytes"),
        ({"username": "u" * 17}, "at most 16 bytes"),
        ({"privilege": "root"}, "privilege"),
        ({"sdr_sensors": [300]}, "sensor numbers"),
        ({"interface": "local"}, "not used"),
        ({"labels": {"point": "rack"}}, "labels.point"),
        ({"community": "public"}, "community"),
    ],
)
def test_bad_config_is_refused_clearly(fields: dict[str, Any], complaint: str) -> None:
    with pytest.raises(ValidationError) as info:
        config(623, **fields)
    assert complaint in str(info.value)


def test_password_never_shows_in_config_repr() -> None:
    cfg = config(623)
    assert ADMIN[1] not in repr(cfg) and ADMIN[1] not in str(cfg.model_dump())


def test_defaults() -> None:
    cfg = IpmiConfig.model_validate(
        {"type": "ipmi", "id": "b", "host": "10.0.0.5", "password": "p"}
    )
    assert (cfg.interface, cfg.port, cfg.cipher_suite, cfg.privilege, cfg.bmc_address) == (
        "lanplus",
        623,
        None,
        "user",
        0x20,
    )
    # Below BMCs' ~60 s idle timeout, and no keep-alive meets a read at interval 60 (the next
    # would be due 80 s after a read): ipmi_config.py.
    assert cfg.keep_alive_s == 40


def test_password_file_is_read_at_build_time(bmc: IpmiSim, tmp_path: Path) -> None:
    secret = tmp_path / "bmc.pass"
    secret.write_text(ADMIN[1] + "\n")
    bmc.set_power(451)
    src = source(bmc.port, password=None, password_file=str(secret))
    secret.unlink()  # already read
    assert by_metric(read_once(src))["power_w"].value == 451.0


def test_unreadable_password_file_is_a_config_error(tmp_path: Path) -> None:
    cfg = config(623, password=None, password_file=str(tmp_path / "missing"))
    with pytest.raises(ConfigError, match="password_file"):
        cfg.build()


def test_no_password_in_any_log_line(bmc: IpmiSim, caplog: pytest.LogCaptureFixture) -> None:
    # pyipmi logs its Session object at debug level; ours leaves the password out.
    caplog.set_level(logging.DEBUG)
    with capture_logs() as logs:
        read_once(source(bmc.port))
        with pytest.raises(DeviceError):
            read_once(source(bmc.port, password=WRONG_PASSWORD))
    assert "Close Session" in caplog.text  # pyipmi did log the session
    text = caplog.text + repr(logs)
    assert ADMIN[1] not in text and WRONG_PASSWORD not in text


def test_firmware_revision_keeps_its_bcd_minor_and_drops_a_missing_one() -> None:
    """Get Device ID's firmware bytes as python-ipmi decodes them (major, BCD minor as an
    int; 0xFF where the BMC gives none): the minor's two digits as ipmitool prints them
    (2.05, 2.50); no minor revision, the major alone (7, where ipmitool would print 7.ff)."""
    from types import SimpleNamespace

    from dcmeter.agent.sources.ipmi_identity import device_identity

    def firmware(major: int, minor: int) -> str | None:
        dev = SimpleNamespace(fw_revision=SimpleNamespace(major=major, minor=minor))
        return device_identity(SimpleNamespace(get_device_id=lambda: dev)).get("firmware")

    assert (firmware(2, 5), firmware(2, 50), firmware(7, 0xFF)) == ("2.05", "2.50", "7")
