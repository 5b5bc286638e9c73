"""The snmp source read against dcmeter's simulated SNMP agent (v2c and v3 authPriv).

The simulator computes every value from a model at the instant a request arrives; each test
freezes the agent's clock, so what the source reports must equal the model exactly. The
simulator itself is cross-checked with net-snmp's tools and pysnmp in tests/sim/test_sim_snmp.py.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import Any, TypeVar

import pytest
from structlog.testing import capture_logs

from dcmeter.agent.samples import Reading
from dcmeter.agent.sources import DeviceError
from dcmeter.agent.sources.snmp import SnmpConfig, SnmpSource
from dcmeter.sim.loop import LoopThread
from dcmeter.sim.snmp import SimInterface, SimSnmpAgent

T = TypeVar("T")

T0 = 1_700_000_000.0  # model start (Unix s)
BOOT = T0 - 3600.0  # the agent booted an hour before the model started
U64, U32 = 2**64, 2**32
V3 = ("ops", "auth-secret-1", "priv-secret-1")
GBPS_10 = 1_250_000_000  # octets/s of a saturated 10 Gbit/s port


class Clock:
    """A clock the test sets; the agent reads it once per request."""

    def __init__(self, t: float) -> None:
        self.t = t

    def __call__(self) -> float:
        return self.t


def ramp(rate: int, start: int = 0) -> Callable[[float], int]:
    """Octets since start, exact integers: `start + rate·(t - T0)` for whole seconds."""
    return lambda t: start + rate * round(t - T0)


def octets(fn: Callable[[float], float], t: float, modulus: int) -> float:
    """What an SNMP counter of this model shows at t, as the float a Reading carries.

    Readings are floats: a counter above 2**53 is rounded to the nearest float (to 4096
    octets just below 2**64).
    """
    return float(math.floor(fn(t)) % modulus)


def uptime_s(t: float, boot_t: float) -> float:
    """sysUpTime at t in seconds: whole hundredths since boot, as TimeTicks carry it."""
    return int((t - boot_t) * 100) / 100


def switch_ports() -> list[SimInterface]:
    """A switch whose two uplinks (alias `uplink…`) are selected; port 1 passes 2**64 at T0+10."""
    return [
        SimInterface(
            index=1,
            name="Eth1/1",
            alias="uplink to spine-A",
            in_octets=ramp(GBPS_10, U64 - 10 * GBPS_10),
            out_octets=ramp(GBPS_10 // 2, 7_000_000_000_000),
            speed_mbps=100_000,
        ),
        SimInterface(
            index=2,
            name="Eth1/2",
            alias="server-12",
            in_octets=ramp(1000),
            out_octets=ramp(2000),
        ),
        SimInterface(
            index=5,
            name="Eth1/5",
            alias="uplink to spine-B",
            in_octets=ramp(123_456_789, 42),
            out_octets=ramp(987_654_321, 4_000_000_000_000_000),
            speed_mbps=40_000,
        ),
    ]


@pytest.fixture
def loop() -> Iterator[LoopThread]:
    """One event loop in a background thread for the test's agents; all stop with it."""
    with LoopThread() as lt:
        yield lt


def config(port: int, **fields: Any) -> SnmpConfig:
    """A source config for the simulated agent on 127.0.0.1:port: v2c unless fields say v3."""
    data: dict[str, Any] = {"type": "snmp", "id": "sim-1", "host": "127.0.0.1", "port": port}
    if fields.get("version") != "3":
        data["community"] = "public"
    if fields.get("role") != "storage":
        data["interfaces"] = {"if_alias_pattern": "^uplink"}
    return SnmpConfig.model_validate({**data, **fields})


def with_source(cfg: SnmpConfig, body: Callable[[SnmpSource], Coroutine[Any, Any, T]]) -> T:
    """Run `body(source)` in a fresh event loop, closing the source after."""

    async def scenario() -> T:
        source = cfg.build()
        try:
            return await body(source)
        finally:
            await source.close()

    return asyncio.run(scenario())


def reads_at(cfg: SnmpConfig, clock: Clock, times: Sequence[float]) -> list[list[Reading]]:
    """One read with the agent's clock frozen at each of `times`, all by one source."""

    async def body(source: SnmpSource) -> list[list[Reading]]:
        out = []
        for t in times:
            clock.t = t
            out.append(await source.read())
        return out

    return with_source(cfg, body)


def by_port(readings: list[Reading]) -> dict[tuple[str, str], dict[str, float]]:
    """{(if_index, if_name): {metric: value}} for the port readings; no duplicates allowed."""
    ports: dict[tuple[str, str], dict[str, float]] = {}
    for r in readings:
        if "if_index" in r.labels:
            assert set(r.labels) == {"if_index", "if_name"}, r.labels
            row = ports.setdefault((r.labels["if_index"], r.labels["if_name"]), {})
            assert r.metric.name not in row, r
            row[r.metric.name] = r.value
    return ports


def unlabelled(readings: list[Reading], metric: str) -> float:
    """The one reading of a metric that belongs to no port."""
    (found,) = [r.value for r in readings if r.metric.name == metric and not r.labels]
    return found


def test_v2c_switch_ports_follow_the_model(loop: LoopThread) -> None:
    clock = Clock(T0 + 5.0)
    ports = switch_ports()
    port = loop.serve(SimSnmpAgent(interfaces=ports, boot_t=BOOT, clock=clock))
    times = (T0 + 5.0, T0 + 65.0)  # port 1's ifHCInOctets wraps past 2**64 in between
    reads = reads_at(config(port), clock, times)
    selected = [p for p in ports if p.alias.startswith("uplink")]
    for t, readings in zip(times, reads, strict=True):
        assert unlabelled(readings, "sys_uptime_s") == uptime_s(t, BOOT)
        assert by_port(readings) == {
            (str(p.index), p.name): {
                "if_in_octets": octets(p.in_octets, t, U64),
                "if_out_octets": octets(p.out_octets, t, U64),
                "if_speed_bps": p.speed_mbps * 1e6,
                "if_speed_unknown": 0.0,
                "if_counter_discontinuity_s": 0.0,
            }
            for p in selected
        }
        assert {r.metric.modulus for r in readings if r.metric.name.endswith("_octets")} == {
            float(U64)
        }
    # The counters advance at the model's rate, across the 2**64 wrap of port 1's input too.
    dt = round(times[1] - times[0])
    rates = {"1": (GBPS_10, GBPS_10 // 2), "5": (123_456_789, 987_654_321)}
    first, second = by_port(reads[0]), by_port(reads[1])
    wrapped = ("1", "Eth1/1")
    assert second[wrapped]["if_in_octets"] < first[wrapped]["if_in_octets"]
    deltas = {
        (key, metric): (int(second[key][metric]) - int(row[metric])) % U64
        for key, row in first.items()
        for metric in ("if_in_octets", "if_out_octets")
    }
    # Port 1's first input reading is a float rounded near 2**64: its delta is the model's
    # delta between those floats, within one float step (4096) of the rate's.
    model_in = ports[0].in_octets
    wrapped_delta = deltas.pop((wrapped, "if_in_octets"))
    assert (
        wrapped_delta
        == (int(octets(model_in, times[1], U64)) - int(octets(model_in, times[0], U64))) % U64
    )
    assert wrapped_delta == pytest.approx(GBPS_10 * dt, abs=4096)
    assert deltas == {
        (key, metric): rates[key[0]][n] * dt
        for key in first
        for n, metric in enumerate(("if_in_octets", "if_out_octets"))
        if (key, metric) != (wrapped, "if_in_octets")
    }


def test_port_without_hc_counters_reads_32_bit_counters_past_their_wrap(
    loop: LoopThread,
) -> None:
    clock = Clock(T0)
    narrow = SimInterface(
        index=3,
        name="Gi0/3",
        alias="uplink old",
        in_octets=ramp(GBPS_10 // 10, 3 * U32 + 12_345),
        out_octets=ramp(GBPS_10 // 20, 7 * U32 - 1000),
        speed_mbps=1000,
        hc=False,
    )
    port = loop.serve(SimSnmpAgent(interfaces=[narrow], boot_t=BOOT, clock=clock))
    times = (T0 + 10.0, T0 + 20.0)
    with capture_logs() as logs:
        reads = reads_at(config(port), clock, times)
    for t, readings in zip(times, reads, strict=True):
        row = by_port(readings)[("3", "Gi0/3")]
        for metric, fn in (
            ("if_in_octets", narrow.in_octets),
            ("if_out_octets", narrow.out_octets),
        ):
            assert fn(t) > U32
            assert row[metric] == octets(fn, t, U32)
        assert row["if_speed_bps"] == 1e9
        assert {r.metric.modulus for r in readings if r.metric.name.endswith("_octets")} == {
            float(U32)
        }
    # Told once for the source, not on every read.
    fallbacks = [e for e in logs if "32-bit" in e["event"]]
    assert [e["ports"] for e in fallbacks] == [["Gi0/3"]]


@pytest.mark.parametrize(
    ("override", "want_bps"),
    [(None, None), (2.5e10, 2.5e10), ({"Eth1/9": 4e8}, 4e8), ({"9": 4e8}, 4e8)],
)
def test_unknown_line_rate_and_its_override(
    loop: LoopThread, override: float | dict[str, float] | None, want_bps: float | None
) -> None:
    clock = Clock(T0 + 30.0)
    unknown = SimInterface(
        index=9,
        name="Eth1/9",
        alias="uplink lag member",
        in_octets=ramp(10),
        out_octets=ramp(20),
        speed_mbps=0,
    )
    port = loop.serve(SimSnmpAgent(interfaces=[unknown], boot_t=BOOT, clock=clock))
    selection = {"if_alias_pattern": "^uplink", "speed_override_bps": override}
    (readings,) = reads_at(config(port, interfaces=selection), clock, [clock.t])
    row = by_port(readings)[("9", "Eth1/9")]
    assert row["if_in_octets"] == octets(unknown.in_octets, clock.t, U64)
    if want_bps is None:
        assert row["if_speed_unknown"] == 1.0
        assert "if_speed_bps" not in row
    else:
        assert row["if_speed_unknown"] == 0.0
        assert row["if_speed_bps"] == want_bps


def v3_fields(user: tuple[str, str, str]) -> dict[str, Any]:
    """Config fields for an SNMPv3 authPriv SHA/AES user."""
    name, auth_password, priv_password = user
    return {
        "version": "3",
        "username": name,
        "security_level": "authPriv",
        "auth_protocol": "SHA",
        "auth_password": auth_password,
        "priv_protocol": "AES",
        "priv_password": priv_password,
    }


def test_v3_authpriv_sha_aes_reads_the_model(loop: LoopThread) -> None:
    clock = Clock(T0 + 4321.0)
    ports = switch_ports()
    port = loop.serve(SimSnmpAgent(interfaces=ports, boot_t=BOOT, clock=clock, v3_user=V3))
    (readings,) = reads_at(config(port, **v3_fields(V3)), clock, [clock.t])
    assert unlabelled(readings, "sys_uptime_s") == uptime_s(clock.t, BOOT)
    got = by_port(readings)
    assert set(got) == {("1", "Eth1/1"), ("5", "Eth1/5")}
    for p in (ports[0], ports[2]):
        row = got[(str(p.index), p.name)]
        assert row["if_in_octets"] == octets(p.in_octets, clock.t, U64)
        assert row["if_out_octets"] == octets(p.out_octets, clock.t, U64)
        assert row["if_speed_bps"] == p.speed_mbps * 1e6


@pytest.mark.parametrize(
    ("user", "key"),
    [
        ((V3[0], "wrong-auth-pw", V3[2]), "auth_password"),
        ((V3[0], V3[1], "wrong-priv-pw"), "priv_password"),
    ],
)
def test_v3_wrong_password_is_a_device_error_naming_the_key(
    loop: LoopThread, user: tuple[str, str, str], key: str
) -> None:
    clock = Clock(T0)
    port = loop.serve(SimSnmpAgent(interfaces=switch_ports(), boot_t=BOOT, clock=clock, v3_user=V3))

    async def body(source: SnmpSource) -> list[Reading]:
        return await source.read()

    with pytest.raises(DeviceError) as caught:
        with_source(config(port, **v3_fields(user)), body)
    message = str(caught.value)
    assert key in message
    for secret in {*V3[1:], *user[1:]}:
        assert secret not in message


def test_storage_cpu_util_is_the_mean_of_the_model_loads(loop: LoopThread) -> None:
    clock = Clock(T0 + 7.0)

    def loads(t: float) -> list[float]:
        return [10 + round(t - T0), 80 - round(t - T0), 99.0, 0.0]

    port = loop.serve(SimSnmpAgent(cpu_loads=loads, sys_name="array-1", boot_t=BOOT, clock=clock))
    times = (T0 + 7.0, T0 + 40.0)
    cfg = config(port, role="storage")
    reads = reads_at(cfg, clock, times)
    assert cfg.build().info.labels["kind"] == "storage"
    for t, readings in zip(times, reads, strict=True):
        assert unlabelled(readings, "cpu_util_pct") == sum(loads(t)) / len(loads(t))
        assert unlabelled(readings, "sys_uptime_s") == uptime_s(t, BOOT)
        assert by_port(readings) == {}


def test_out_of_range_model_loads_are_clamped_by_the_simulator(loop: LoopThread) -> None:
    """The simulator serves round(load) clamped to 0..100, so the source never sees -5 or 130.

    The source's own rejection of hrProcessorLoad outside 0..100 cannot be reached through
    this simulator; it is tested on `mean_processor_load` in test_snmp.py.
    """
    clock = Clock(T0)
    model = [-5.0, 130.0, 42.0]
    port = loop.serve(SimSnmpAgent(cpu_loads=lambda t: model, boot_t=BOOT, clock=clock))
    (readings,) = reads_at(config(port, role="storage"), clock, [clock.t])
    served = [min(100, max(0, round(v))) for v in model]
    assert served == [0, 100, 42]
    assert unlabelled(readings, "cpu_util_pct") == sum(served) / len(served)


def test_agent_restart_rewalks_and_reports_the_counter_discontinuity(loop: LoopThread) -> None:
    """A restarted agent renumbers its ports: the source must follow the alias to the new row."""
    clock = Clock(T0 + 1000.0)
    before = SimInterface(
        index=1, name="Eth1/1", alias="uplink", in_octets=ramp(1000, 10**9), out_octets=ramp(3000)
    )
    first = SimSnmpAgent(interfaces=[before], boot_t=BOOT, clock=clock)
    port = loop.serve(first)
    reboot_t, reset_t = T0 + 900.0, T0 + 950.0
    after = SimInterface(
        index=7,
        name="Eth1/1",
        alias="uplink",
        in_octets=lambda t: 555 * round(t - reboot_t),
        out_octets=lambda t: 777 * round(t - reboot_t),
        discontinuity_t=reset_t,
    )
    # A port without the alias now holds ifIndex 1: reading the old row would find counters.
    decoy = SimInterface(index=1, name="mgmt0", in_octets=ramp(1), out_octets=ramp(1))
    second = SimSnmpAgent(interfaces=[decoy, after], boot_t=reboot_t, clock=clock)

    async def body(source: SnmpSource) -> tuple[list[Reading], list[Reading]]:
        old = await source.read()
        await asyncio.to_thread(loop.run, first.stop())
        await asyncio.to_thread(loop.serve, second, "127.0.0.1", port)
        clock.t = T0 + 1010.0
        return old, await source.read()

    old, new = with_source(config(port), body)
    assert unlabelled(old, "sys_uptime_s") == uptime_s(T0 + 1000.0, BOOT)
    assert by_port(old)[("1", "Eth1/1")]["if_counter_discontinuity_s"] == 0.0
    assert unlabelled(new, "sys_uptime_s") == uptime_s(clock.t, reboot_t)
    assert unlabelled(new, "sys_uptime_s") < unlabelled(old, "sys_uptime_s")
    assert by_port(new) == {
        ("7", "Eth1/1"): {
            "if_in_octets": octets(after.in_octets, clock.t, U64),
            "if_out_octets": octets(after.out_octets, clock.t, U64),
            "if_speed_bps": after.speed_mbps * 1e6,
            "if_speed_unknown": 0.0,
            "if_counter_discontinuity_s": reset_t - reboot_t,
        }
    }
    assert second.requests > 0  # the new agent answered the second read
