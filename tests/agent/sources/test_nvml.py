"""The nvml source over the real pynvml bindings and a stub libnvidia-ml.so.1 (no GPU needed).

The bindings load the library once per process, so each case runs the source in a fresh
subprocess with LD_LIBRARY_PATH pointing at the stub that the session fixture compiles.
"""

from __future__ import annotations

import ctypes.util
import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dcmeter.agent.sources.nvml import NvmlConfig
from dcmeter.agent.sources.nvml_codes import field_number
from dcmeter.collectors.evaluation.energy import counter_energy
from dcmeter.collectors.evaluation.series import Series
from tests.peers.nvml import NvmlStub, StubGpu, StubState, build_stub

UUID_A = "GPU-1f0e7c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b"
UUID_B = "GPU-9a8b7c6d-5e4f-4a3b-9c2d-1e0f9a8b7c6d"
UUID_C = "GPU-0badc0de-1234-4abc-8def-0123456789ab"
H100 = "NVIDIA H100 80GB HBM3"
A100 = "NVIDIA A100-SXM4-80GB"
NOT_SUPPORTED, DRIVER_NOT_LOADED, UNKNOWN = 3, 9, 999


@pytest.fixture(scope="session")
def nvml_lib(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The stub library, compiled once per session."""
    try:
        return build_stub(tmp_path_factory.mktemp("nvml-stub"))
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        detail = getattr(exc, "stderr", "") or ""
        pytest.fail(f"cannot build the NVML stub: {exc}\n{detail}")


@pytest.fixture
def stub(nvml_lib: Path, tmp_path: Path) -> NvmlStub:
    """The stub with this test's own state file."""
    return NvmlStub(nvml_lib, tmp_path)


def gpu(uuid: str, name: str = H100, **values: Any) -> StubGpu:
    """A GPU with every quantity unless overridden (None = not supported)."""
    base: dict[str, Any] = {
        "power_mw": 111_000, "power_avg_mw": 222_000, "power_instant_mw": 233_000,
        "energy_mj": 1_000_000, "util_gpu": 50, "util_mem": 20,
    }
    return StubGpu(uuid, name, **{**base, **values})


def per_gpu(readings: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """gpu_uuid -> {metric: value}."""
    out: dict[str, dict[str, float]] = {}
    for r in readings:
        out.setdefault(r["labels"]["gpu_uuid"], {})[r["metric"]] = r["value"]
    return out


def events(run: dict[str, Any], event: str, **fields: Any) -> list[dict[str, Any]]:
    """Log events named `event` with these field values."""
    return [
        e for e in run["logs"]
        if e["event"] == event and all(e.get(k) == v for k, v in fields.items())
    ]


def test_two_gpus_are_read_with_their_labels(stub: NvmlStub) -> None:
    stub.write(StubState([
        gpu(UUID_A, H100, power_mw=301_000, power_avg_mw=299_500, power_instant_mw=312_250,
            energy_mj=123_456_789, util_gpu=87, util_mem=41),
        gpu(UUID_B, A100, power_mw=90_000, power_avg_mw=150_125, power_instant_mw=160_000,
            energy_mj=987_654_321, util_gpu=12, util_mem=3),
    ]))
    run = stub.drive({}, [("read",)])
    readings = run["results"][0]["readings"]
    assert per_gpu(readings) == {
        UUID_A: {"gpu_power_w": 299.5, "gpu_power_instant_w": 312.25,
                 "gpu_energy_j": 123_456.789, "gpu_util_pct": 87.0, "gpu_mem_util_pct": 41.0},
        UUID_B: {"gpu_power_w": 150.125, "gpu_power_instant_w": 160.0,
                 "gpu_energy_j": 987_654.321, "gpu_util_pct": 12.0, "gpu_mem_util_pct": 3.0},
    }
    labels = {r["labels"]["gpu_uuid"]: r["labels"] for r in readings}
    assert labels[UUID_A] == {"gpu_uuid": UUID_A, "gpu_index": "0", "gpu_name": H100}
    assert labels[UUID_B] == {"gpu_uuid": UUID_B, "gpu_index": "1", "gpu_name": A100}
    specs = {r["metric"]: (r["unit"], r["kind"], r["modulus"]) for r in readings}
    assert specs["gpu_energy_j"] == ("J", "counter", None)
    assert specs["gpu_power_w"] == ("W", "gauge", None)
    assert specs["gpu_util_pct"] == ("%", "gauge", None)
    # GPU energy sits beside point 8, never in its place.
    assert run["info"] == {"id": "gpus", "protocol": "nvml", "labels": {"kind": "gpu"}}
    calls = run["results"][0]["calls"]
    assert calls.count("nvmlInitWithFlags") == 1
    # Field 185 was there: the 1 s average came from it, not from nvmlDeviceGetPowerUsage.
    assert "nvmlDeviceGetPowerUsage" not in calls
    assert run["results"][-1] == {"closed": True, "calls": ["nvmlShutdown"]}


def test_device_identity_is_the_gpus_names_uuids_and_serials(stub: NvmlStub) -> None:
    stub.write(StubState([gpu(UUID_A, H100, serial="1654922007123"),
                          gpu(UUID_B, A100, serial="1320221015777")]))
    run = stub.drive({}, [("read",)])
    # Serials in the order of the UUIDs (GPU 0, GPU 1), as nvmlDeviceGetSerial gave them.
    assert run["device"] == {"make": "NVIDIA", "model": f"{A100}, {H100}",
                             "uuid": f"{UUID_A} {UUID_B}", "serial": "1654922007123 1320221015777"}
    assert run["results"][0]["calls"].count("nvmlDeviceGetSerial") == 2


def test_device_identity_serial_absent_where_one_gpu_has_none(stub: NvmlStub) -> None:
    # GPU 1 answers nvmlDeviceGetSerial with NVML_ERROR_NOT_SUPPORTED (as a GeForce board
    # does): a list with a hole would pair serials with the wrong UUIDs, so none is reported.
    stub.write(StubState([gpu(UUID_A, H100, serial="1654922007123"), gpu(UUID_B, A100)]))
    run = stub.drive({}, [("read",)])
    assert run["device"] == {"make": "NVIDIA", "model": f"{A100}, {H100}",
                             "uuid": f"{UUID_A} {UUID_B}"}
    assert "nvmlDeviceGetSerial" in run["results"][0]["calls"]


def test_values_follow_the_device_live(stub: NvmlStub) -> None:
    first = StubState([gpu(UUID_A, power_avg_mw=200_000, energy_mj=5_000_000, util_gpu=10)])
    second = StubState([gpu(UUID_A, power_avg_mw=650_500, energy_mj=5_650_500, util_gpu=99)])
    stub.write(first)
    run = stub.drive({}, [("read",), ("state", second), ("read",)])
    before, after = (per_gpu(r["readings"])[UUID_A] for r in run["results"][:-1])
    assert (before["gpu_power_w"], before["gpu_energy_j"], before["gpu_util_pct"]) == (200.0, 5000.0, 10.0)
    assert (after["gpu_power_w"], after["gpu_energy_j"], after["gpu_util_pct"]) == (650.5, 5650.5, 99.0)
    # NVML stays initialised and the handle is kept between reads.
    second_calls = run["results"][1]["calls"]
    assert not [c for c in second_calls if c.startswith(("nvmlInit", "nvmlDeviceGetHandle"))]


def test_energy_counter_decrease_is_kept_raw_logged_and_a_reset_for_the_evaluation(
    stub: NvmlStub,
) -> None:
    counters_mj = [500_000_000, 500_060_000, 1_200, 61_200]  # driver reload after the 2nd
    stub.write(StubState([gpu(UUID_A, energy_mj=counters_mj[0])]))
    steps: list[tuple[Any, ...]] = [("read",)]
    for mj in counters_mj[1:]:
        steps += [("state", StubState([gpu(UUID_A, energy_mj=mj)])), ("read",)]
    run = stub.drive({}, steps)
    energy = [
        next(r for r in res["readings"] if r["metric"] == "gpu_energy_j")
        for res in run["results"][:-1]
    ]
    assert [r["value"] for r in energy] == [mj / 1000 for mj in counters_mj]
    resets = events(run, "gpu energy counter reset")
    assert len(resets) == 1
    assert (resets[0]["gpu_uuid"], resets[0]["previous_j"], resets[0]["value_j"]) == (UUID_A, 500_060.0, 1.2)
    # The evaluation sees a modulus-less counter fall: a reset, counted from zero and flagged.
    ts = tuple(r["ts_ns"] / 1e9 for r in energy)
    series = Series("gpus", "gpu_energy_j", "J", "counter", ts, tuple(r["value"] for r in energy))
    figure = counter_energy(series, ts[0], ts[-1], gap_s=3600)
    assert (figure.resets, figure.wraps, figure.valid) == (1, 0, False)
    assert figure.kwh == pytest.approx((60.0 + 1.2 + 60.0) / 3.6e6)


@pytest.mark.parametrize(
    ("overrides", "power_w", "instant_w", "calls_power_usage"),
    [
        pytest.param({"power_avg_mw": None, "power_instant_mw": None}, 250.0, None, True,
                     id="fields-185-186-unsupported"),
        pytest.param({"errors": {"fields": NOT_SUPPORTED}}, 250.0, None, True,
                     id="field-values-call-unsupported"),
        pytest.param({"power_avg_mw": None}, 250.0, 233.0, True, id="only-185-unsupported"),
        pytest.param({"power_instant_mw": None}, 222.0, None, False, id="only-186-unsupported"),
    ],
)
def test_missing_power_fields_fall_back_to_power_usage_with_one_notice(
    stub: NvmlStub, overrides: dict[str, Any], power_w: float, instant_w: float | None,
    calls_power_usage: bool,
) -> None:
    stub.write(StubState([gpu(UUID_A, power_mw=250_000, **overrides)]))
    run = stub.drive({}, [("read",), ("read",)])
    for res in run["results"][:-1]:
        values = per_gpu(res["readings"])[UUID_A]
        assert values["gpu_power_w"] == power_w
        assert values.get("gpu_power_instant_w") == instant_w
        assert values["gpu_energy_j"] == 1000.0
        assert ("nvmlDeviceGetPowerUsage" in res["calls"]) == calls_power_usage
    notices = events(run, "nvml call not supported", gpu_uuid=UUID_A)
    assert len(notices) == len({e["call"] for e in notices}) >= 1  # each said once, not per read
    if power_w == 250.0:
        assert events(run, "nvml call not supported", call="field 185 power average",
                      effect="gpu_power_w from nvmlDeviceGetPowerUsage")


def test_a_gpu_without_energy_counter_or_utilisation_gives_what_it_has(stub: NvmlStub) -> None:
    stub.write(StubState([gpu(UUID_A, "Tesla P100-PCIE-16GB", power_avg_mw=None,
                              power_instant_mw=None, power_mw=40_000, energy_mj=None,
                              util_gpu=None, util_mem=None)]))
    run = stub.drive({}, [("read",), ("read",)])
    for res in run["results"][:-1]:
        assert per_gpu(res["readings"]) == {UUID_A: {"gpu_power_w": 40.0}}
    notices = events(run, "nvml call not supported", gpu_uuid=UUID_A)
    assert sorted(e["call"] for e in notices) == [
        "field 185 power average", "field 186 power instant",
        "nvmlDeviceGetTotalEnergyConsumption", "nvmlDeviceGetUtilizationRates"]
    # Unsupported calls are not asked again.
    assert "nvmlDeviceGetTotalEnergyConsumption" not in run["results"][1]["calls"]


@pytest.mark.parametrize(
    ("gpus", "expected"),
    [
        pytest.param([UUID_C, 0], [(UUID_C, "2"), (UUID_A, "0")], id="uuid-and-index"),
        pytest.param([1], [(UUID_B, "1")], id="index"),
        pytest.param([UUID_B.upper()], [(UUID_B, "1")], id="uuid-any-case"),
        pytest.param([0, UUID_A], [(UUID_A, "0")], id="same-gpu-twice-read-once"),
    ],
)
def test_gpus_are_selected_by_uuid_and_index(
    stub: NvmlStub, gpus: list[int | str], expected: list[tuple[str, str]]
) -> None:
    stub.write(StubState([gpu(UUID_A, energy_mj=1_000), gpu(UUID_B, A100, energy_mj=2_000),
                          gpu(UUID_C, energy_mj=3_000)]))
    run = stub.drive({"gpus": gpus}, [("read",)])
    energy = [r for r in run["results"][0]["readings"] if r["metric"] == "gpu_energy_j"]
    assert [(r["labels"]["gpu_uuid"], r["labels"]["gpu_index"]) for r in energy] == expected
    by_uuid = {UUID_A: 1.0, UUID_B: 2.0, UUID_C: 3.0}
    assert all(r["value"] == by_uuid[r["labels"]["gpu_uuid"]] for r in energy)


def test_an_unknown_gpu_is_a_device_error_listing_the_gpus_seen(stub: NvmlStub) -> None:
    stub.write(StubState([gpu(UUID_A), gpu(UUID_B, A100)]))
    run = stub.drive({"gpus": [5, UUID_C]}, [("read",), ("read",)])
    first, second, _ = run["results"]
    assert first["error"] == "DeviceError"
    for text in ("5", UUID_C, f"0 {UUID_A} ({H100})", f"1 {UUID_B} ({A100})", "nvidia-smi -L"):
        assert text in first["message"]
    assert second["message"] == first["message"]


def test_no_nvml_library_is_one_clear_error(stub: NvmlStub, tmp_path: Path) -> None:
    if ctypes.util.find_library("nvidia-ml"):
        pytest.skip("a real NVML is installed: the library cannot be made to vanish here")
    empty = tmp_path / "empty"
    empty.mkdir()
    run = stub.drive({}, [("read",), ("read",), ("advance", 601), ("read",)], lib_dir=empty)
    messages = {(r["error"], r["message"]) for r in run["results"][:-1]}
    assert len(messages) == 1  # the same message every time: the Poller logs it once
    kind, message = messages.pop()
    assert kind == "TargetUnreachable"
    assert "libnvidia-ml.so.1 not found" in message
    assert "install the driver or remove this source" in message
    assert "600 s" in message


POLL_THREE_TICKS = """
import asyncio, json
from structlog.testing import capture_logs
from dcmeter.agent.scheduler import Poller
from dcmeter.agent.sources.nvml import NvmlConfig
async def main():
    source = NvmlConfig(type="nvml", id="gpus").build()
    poller = Poller([source], [5.0])
    ticks = [len(await poller.poll()) for _ in range(3)]
    await poller.close()
    return ticks, poller.failures

with capture_logs() as logs:
    ticks, failures = asyncio.run(main())
print(json.dumps({"ticks": ticks, "failures": failures, "logs": logs}))
"""


def test_a_host_without_nvml_is_logged_once_not_once_per_tick(stub: NvmlStub, tmp_path: Path) -> None:
    if ctypes.util.find_library("nvidia-ml"):
        pytest.skip("a real NVML is installed: the library cannot be made to vanish here")
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = stub.run_python(POLL_THREE_TICKS, lib_dir=empty)
    assert proc.returncode == 0, proc.stderr
    out = json.loads(proc.stdout)
    assert out["ticks"] == [0, 0, 0]
    assert out["failures"] == {"gpus": 3}
    assert [e["event"] for e in out["logs"]] == ["target failed"]
    assert "libnvidia-ml.so.1 not found" in out["logs"][0]["reason"]


def test_nvml_init_is_not_retried_more_often_than_every_ten_minutes(stub: NvmlStub) -> None:
    broken = StubState([gpu(UUID_A)], init_error=DRIVER_NOT_LOADED)
    stub.write(broken)
    steps: list[tuple[Any, ...]] = [
        ("read",), ("advance", 300), ("read",), ("state", StubState([gpu(UUID_A, power_avg_mw=123_000)])),
        ("advance", 299), ("read",), ("advance", 1), ("read",), ("read",),
    ]
    run = stub.drive({}, steps)
    r = run["results"][:-1]
    inits = [[c for c in res["calls"] if c.startswith("nvmlInit")] for res in r]
    assert inits == [["nvmlInitWithFlags"], [], [], ["nvmlInitWithFlags"], []]
    assert [res.get("error") for res in r] == ["TargetUnreachable"] * 3 + [None, None]
    assert "kernel driver is not loaded" in r[0]["message"]
    assert r[0]["message"] == r[1]["message"] == r[2]["message"]
    assert per_gpu(r[3]["readings"])[UUID_A]["gpu_power_w"] == 123.0
    assert len(events(run, "nvml initialised")) == 1


def test_a_lost_gpu_is_an_error_naming_it_and_is_found_again(stub: NvmlStub) -> None:
    healthy = StubState([gpu(UUID_A), gpu(UUID_B, A100)])
    lost = StubState([gpu(UUID_A), gpu(UUID_B, A100, lost=True)])
    stub.write(healthy)
    run = stub.drive({}, [("read",), ("state", lost), ("read",), ("state", healthy), ("read",)])
    ok, failed, back, _ = run["results"]
    assert set(per_gpu(ok["readings"])) == {UUID_A, UUID_B}
    assert failed["error"] == "DeviceError"
    assert f"GPU 1 {UUID_B} ({A100})" in failed["message"]
    assert "GPU is lost" in failed["message"]
    assert "Xid" in failed["message"]
    assert set(per_gpu(back["readings"])) == {UUID_A, UUID_B}
    assert "nvmlDeviceGetHandleByIndex_v2" in back["calls"]  # resolved again after the loss


def test_a_gpu_that_cannot_be_opened_fails_all_but_not_a_selection_without_it(
    stub: NvmlStub,
) -> None:
    stub.write(StubState([gpu(UUID_A, energy_mj=4_000), gpu(UUID_B, A100, errors={"handle": 15})]))
    everything = stub.drive({}, [("read",)])["results"][0]
    assert everything["error"] == "DeviceError"
    assert f"0 {UUID_A} ({H100})" in everything["message"]
    assert "1 (cannot open: GPU is lost)" in everything["message"]
    only_first = stub.drive({"gpus": [UUID_A]}, [("read",)])["results"][0]
    assert per_gpu(only_first["readings"])[UUID_A]["gpu_energy_j"] == 4.0


def test_other_nvml_errors_name_the_gpu_and_the_call(stub: NvmlStub) -> None:
    stub.write(StubState([gpu(UUID_A, errors={"util": UNKNOWN})]))
    run = stub.drive({}, [("read",)])
    res = run["results"][0]
    assert res["error"] == "DeviceError"
    assert UUID_A in res["message"]
    assert "nvmlDeviceGetUtilizationRates" in res["message"]
    assert "999" in res["message"]


def test_a_hung_nvml_call_holds_one_thread_and_later_reads_fail_at_once(stub: NvmlStub) -> None:
    stub.write(StubState([gpu(UUID_A, power_avg_mw=275_000, hang_ms=3000)]))
    healthy = StubState([gpu(UUID_A, power_avg_mw=276_000)])
    run = stub.drive({}, [("read", 0.5), ("read",), ("state", healthy), ("wait_idle",), ("read",)])
    timed_out, refused, recovered, _ = run["results"]
    assert timed_out["error"] == "TimeoutError"
    assert refused["error"] == "TargetUnreachable"
    assert "an earlier NVML call has not returned" in refused["message"]
    assert refused["calls"] == []  # nothing new was sent into the stuck driver
    assert per_gpu(recovered["readings"])[UUID_A]["gpu_power_w"] == 276.0


AGENT_TOML = """
[agent]
id = "gpu-host"
state_dir = "{state_dir}"

[[sources]]
id = "gpus"
type = "nvml"
gpus = "all"
labels = {{ rack = "a01" }}
"""


def test_cli_agent_once_prints_both_gpus(stub: NvmlStub, tmp_path: Path) -> None:
    stub.write(StubState([
        gpu(UUID_A, power_avg_mw=301_500, energy_mj=7_000_000, util_gpu=91, util_mem=44),
        gpu(UUID_B, A100, power_avg_mw=95_250, energy_mj=8_000_000, util_gpu=0, util_mem=0),
    ]))
    proc = stub.run_cli(AGENT_TOML.format(state_dir=tmp_path / "state"))
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    assert len(records) == 10
    assert {r["source"] for r in records} == {"gpus"}
    values = {(r["labels"]["gpu_uuid"], r["metric"]): r["value"] for r in records}
    assert values[(UUID_A, "gpu_power_w")] == 301.5
    assert values[(UUID_B, "gpu_power_w")] == 95.25
    assert values[(UUID_A, "gpu_energy_j")] == 7000.0
    assert values[(UUID_B, "gpu_mem_util_pct")] == 0.0
    energy = next(r for r in records if r["metric"] == "gpu_energy_j")
    assert (energy["unit"], energy["kind"]) == ("J", "counter")
    assert "modulus" not in energy
    labels = next(r["labels"] for r in records if r["labels"]["gpu_uuid"] == UUID_B)
    assert labels == {"kind": "gpu", "rack": "a01", "gpu_uuid": UUID_B, "gpu_index": "1",
                      "gpu_name": A100}


def test_cli_agent_once_without_nvml_fails_once_and_clearly(stub: NvmlStub, tmp_path: Path) -> None:
    if ctypes.util.find_library("nvidia-ml"):
        pytest.skip("a real NVML is installed: the library cannot be made to vanish here")
    empty = tmp_path / "empty"
    empty.mkdir()
    proc = stub.run_cli(AGENT_TOML.format(state_dir=tmp_path / "state"), lib_dir=empty)
    assert proc.returncode == 1  # a source failed
    assert proc.stdout == ""
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert len(lines) == 1, proc.stderr
    assert lines[0]["event"] == "target failed"
    assert lines[0]["source"] == "gpus"
    assert "libnvidia-ml.so.1 not found" in lines[0]["reason"]


def config(**fields: Any) -> NvmlConfig:
    return NvmlConfig.model_validate({"type": "nvml", "id": "gpus", **fields})


def test_config_defaults_and_valid_selections() -> None:
    cfg = config()
    assert cfg.gpus == "all"
    source = cfg.build()
    assert source.info.labels == {"kind": "gpu"}
    assert source.info.protocol == "nvml"
    assert config(gpus=[0, UUID_A]).gpus == [0, UUID_A]
    assert config(labels={"kind": "compute", "rack": "a01"}).build().info.labels == {
        "kind": "compute", "rack": "a01"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"gpus": []}, "at least one GPU"),
        ({"gpus": "some"}, 'give "all" or a list'),
        ({"gpus": 3}, 'give "all" or a list'),
        ({"gpus": ["0"]}, "not a GPU UUID"),
        ({"gpus": ["MIG-1f0e7c2a-3b4d-4e5f-8a9b-0c1d2e3f4a5b"]}, "MIG instances are not supported"),
        ({"gpus": [-1]}, "GPU index -1 is out of range"),
        ({"gpus": [True]}, "neither a GPU index nor a GPU UUID"),
        ({"gpus": [1.5]}, "neither a GPU index nor a GPU UUID"),
        ({"gpus": [0, 0]}, "named twice"),
        ({"gpus": [UUID_A, UUID_A.upper()]}, "named twice"),
        ({"gpu": [0]}, "Extra inputs"),
        ({"labels": {"kind": "graphics"}}, "labels.kind"),
    ],
)
def test_config_rejects_bad_values(fields: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        config(**fields)


def test_a_bad_selection_in_the_agent_file_names_file_and_key(tmp_path: Path) -> None:
    from dcmeter.agent.config import load
    from dcmeter.base.configfile import ConfigError

    path = tmp_path / "agent.toml"
    path.write_text(AGENT_TOML.format(state_dir=tmp_path).replace('gpus = "all"', 'gpus = ["0"]'))
    with pytest.raises(ConfigError) as err:
        load(path)
    assert str(path) in str(err.value)
    assert "sources[0].gpus" in str(err.value)
    assert "not a GPU UUID" in str(err.value)


def test_field_values_are_decoded_by_their_type() -> None:
    import pynvml  # the bindings only; no library is loaded here

    value = pynvml.c_nvmlFieldValue_t()
    value.valueType, value.value.dVal = pynvml.NVML_VALUE_TYPE_DOUBLE, 251.5
    assert field_number(value) == 251.5
    value.valueType, value.value.ullVal = pynvml.NVML_VALUE_TYPE_UNSIGNED_LONG_LONG, 2**40 + 7
    assert field_number(value) == float(2**40 + 7)
    value.valueType, value.value.uiVal = pynvml.NVML_VALUE_TYPE_UNSIGNED_INT, 301_000
    assert field_number(value) == 301_000.0
    value.valueType = 77
    assert field_number(value) is None
