"""`npu` source against a stub `npu-smi` on PATH printing Huawei's documented output formats.

The stub (tests/peers/npu_smi_stub.py) is a separate program run through the real asyncio
subprocess path, first on PATH, as npu-smi would be; each value it prints is set here and
the readings must equal it.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from dcmeter.agent.samples import Reading
from dcmeter.agent.sources import DeviceError, SourceError, TargetUnreachable
from dcmeter.agent.sources.npu import MISSING, NpuConfig, NpuSource
from dcmeter.agent.sources.npu_parse import blocks, chip_fields, listed_npus
from tests.peers.npu_smi_stub import StubChip, StubNpu, StubState, install_stub


@pytest.fixture
def stub(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The state file of a stub npu-smi placed first on PATH."""
    state = tmp_path / "state.json"
    StubState().write(state)
    bin_dir = install_stub(tmp_path / "bin", state)
    monkeypatch.setenv("PATH", f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    return state


def source(**extra: Any) -> NpuSource:
    return NpuConfig.model_validate({"type": "npu", "id": "npus", **extra}).build()


def read(src: NpuSource) -> list[Reading]:
    return asyncio.run(src.read())


def by_key(readings: list[Reading]) -> dict[tuple[str, str, str], float]:
    """(metric, npu_id, chip_id or "") -> value; fails on a duplicate."""
    out: dict[tuple[str, str, str], float] = {}
    for r in readings:
        key = (r.metric.name, r.labels["npu_id"], r.labels.get("chip_id", ""))
        assert key not in out, key
        out[key] = r.value
    return out


def test_one_inference_card_values_equal_the_stub(stub: Path) -> None:
    StubState([StubNpu(0, [StubChip(0, "9.1", "37", "46", None, "OK")],
                       serial="025VLB10K7000275", mcu_power_w="16.9")]).write(stub)
    src = source()
    got = by_key(read(src))
    assert got == {
        ("npu_power_w", "0", "0"): 9.1,
        ("npu_util_pct", "0", "0"): 37.0,
        ("npu_mem_util_pct", "0", "0"): 46.0,
        ("npu_health", "0", "0"): 0.0,  # OK
        ("npu_board_power_w", "0", ""): 16.9,  # the MCU block's Power Dissipation(W)
    }
    assert src.info.protocol == "npu"
    assert src.info.labels["kind"] == "gpu"
    assert src.info.device == {
        "make": "Huawei", "model": "Atlas 300I Pro", "serial": "025VLB10K7000275",
        "firmware": "7.1.0.4.218", "device_id": "0x45",
    }


def test_several_npus_and_chips_and_a_second_read_follows_the_stub(stub: Path) -> None:
    state = StubState([
        StubNpu(0, [StubChip(0, "92.5", "80", "30", "55", "OK")], product="Atlas 800T A2",
                serial="SN0", power_key="Power Dissipation(W)"),
        StubNpu(4, [StubChip(0, "101.0", "90", "31", "60", "Warning"),
                    StubChip(1, "99.5", "85", "32", "61", "Critical")],
                product="Atlas 800T A2", serial="SN4", board_id="0x21",
                power_key="Power Dissipation(W)"),
    ])
    state.write(stub)
    src = source()
    got = by_key(read(src))
    # Training cards print the chip's power as "Power Dissipation(W)" in the chip's block and
    # have no MCU block: no npu_board_power_w.
    assert got[("npu_power_w", "0", "0")] == 92.5
    assert got[("npu_power_w", "4", "0")] == 101.0
    assert got[("npu_power_w", "4", "1")] == 99.5
    assert got[("npu_hbm_util_pct", "4", "1")] == 61.0
    assert got[("npu_health", "4", "0")] == 1.0  # Warning
    assert got[("npu_health", "4", "1")] == 3.0  # Critical
    assert not any(k[0] == "npu_board_power_w" for k in got)
    assert len(got) == 3 * 5  # three chips, five metrics each
    assert src.info.device["serial"] == "SN0 SN4"
    assert src.info.device["device_id"] == "0x45 0x21"
    state.npus[1].chips[1].power_w = "120.25"
    state.write(stub)
    assert by_key(read(src))[("npu_power_w", "4", "1")] == 120.25


def test_selection_reads_only_the_chosen_npus_and_names_a_missing_one(stub: Path) -> None:
    StubState([StubNpu(0, [StubChip(0, "10")]), StubNpu(1, [StubChip(0, "20")])]).write(stub)
    got = by_key(read(source(npus=[1])))
    assert {k[1] for k in got} == {"1"}
    assert got[("npu_power_w", "1", "0")] == 20.0
    with pytest.raises(DeviceError) as err:
        read(source(npus=[1, 7]))
    assert str(err.value) == "NPU 7 not found; npu-smi info -l lists 0, 1: check `npus`"


def test_fields_printed_as_na_are_left_out(stub: Path) -> None:
    StubState([StubNpu(0, [StubChip(0, "NA", "NA", "12", None, "OK")],
                       product="NA", firmware="NA", mcu_power_w="NA")]).write(stub)
    src = source()
    got = by_key(read(src))
    assert got == {("npu_mem_util_pct", "0", "0"): 12.0, ("npu_health", "0", "0"): 0.0}
    assert "model" not in src.info.device and "firmware" not in src.info.device


def test_missing_tool_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", str(tmp_path))  # nothing there
    with pytest.raises(DeviceError) as err:
        read(source())
    assert str(err.value) == MISSING
    with pytest.raises(DeviceError) as err:
        read(source(npu_smi=str(tmp_path / "usr/local/bin/npu-smi")))
    assert str(err.value) == (
        f"npu-smi not found at {tmp_path}/usr/local/bin/npu-smi: check `npu_smi`")


def test_failing_tool_is_one_line_and_the_source_recovers(stub: Path) -> None:
    state = StubState([StubNpu(0, [StubChip(0, "9.5")])], fail_exit=3,
                      fail_message="dcmi model initialized failed, because the device is used."
                      " ret is -8020\nsecond line")
    state.write(stub)
    src = source()
    with pytest.raises(DeviceError) as err:
        read(src)
    assert str(err.value) == (
        "`npu-smi info -l` failed (exit 3): dcmi model initialized failed, because the device"
        " is used. ret is -8020")
    state.fail_exit = 0
    state.write(stub)
    assert by_key(read(src)) == {("npu_power_w", "0", "0"): 9.5, ("npu_health", "0", "0"): 0.0}


def test_hanging_tool_times_out_as_one_line(stub: Path) -> None:
    StubState([StubNpu(0)], hang_s=30.0).write(stub)
    src = source(timeout_s=0.5)
    with pytest.raises(TargetUnreachable) as err:
        read(src)
    assert str(err.value) == (
        "`npu-smi info -l` did not answer within 0.5 s: check the Ascend driver "
        "(npu-smi info) and the kernel log")


def test_undocumented_output_is_one_line(stub: Path) -> None:
    StubState([StubNpu(0, [StubChip(0, "9.1", health="Degraded")])]).write(stub)
    with pytest.raises(SourceError) as err:
        read(source())
    assert str(err.value) == (
        "npu-smi info for NPU 0: output not understood: health 'Degraded' is none of OK, "
        "Warning, Alarm, Critical, UNKNOWN")


@pytest.mark.parametrize("bad", [[], [0, 0], [-1], "some", [True]])
def test_config_rejects_a_bad_selection(bad: Any) -> None:
    with pytest.raises(ValidationError):
        NpuConfig.model_validate({"type": "npu", "id": "n", "npus": bad})


def test_parser_reads_the_documented_examples_verbatim() -> None:
    # npusmi_023's example, as printed (whitespace-only line between chip and MCU blocks).
    power = ("        NPU ID                         : 0\n"
             "        Chip Count                     : 1\n\n"
             "        Chip ID                        : 0\n"
             "        NPU Real-time Power(W)         : 9.1\n        \n"
             "        Power Dissipation(W)           : 16.9\n"
             "        Chip Name                      : MCU\n")
    fields = chip_fields(power)
    assert fields.chips == {0: {"Chip ID": "0", "NPU Real-time Power(W)": "9.1"}}
    assert fields.card["Power Dissipation(W)"] == "16.9"
    # The A3 edition's `info -l`: no blank lines between its records.
    listed = listed_npus("Total Count : 2\nNPU ID : 0\nChip Count : 2\nNPU ID : 1\n"
                         "Chip Count : 2\n")
    assert [(n.npu_id, n.chip_count) for n in listed] == [(0, 2), (1, 2)]
    assert blocks("banner line\n----\nA : 1\n") == [{"A": "1"}]


def test_npu_power_counts_as_accelerator_energy_when_the_site_names_it() -> None:
    # The AI evaluation reads [ai] gpus with [ai.metrics] gpu_power; an npu source named there
    # with gpu_power = "npu_power_w" counts: its chips' series (labels npu_id/chip_id) are
    # summed and integrated. By hand: chips at 100 W and 200 W for one hour = 300 Wh.
    from dcmeter.collectors.evaluation.roles import role_energy
    from dcmeter.collectors.evaluation.series import Series
    from dcmeter.collectors.evaluation.site_ai import AiMetrics

    metrics = AiMetrics(gpu_power="npu_power_w", gpu_util="npu_util_pct")
    ts = [0.0, 1800.0, 3600.0]
    series = [
        Series("npus", "npu_power_w", "W", "gauge", ts, [w] * 3,
               labels={"npu_id": "0", "chip_id": str(chip), "kind": "gpu"})
        for chip, w in ((0, 100.0), (1, 200.0))
    ]
    role = role_energy(series, ["npus"], 0.0, 3600.0, metrics.gpu_energy, metrics.gpu_power,
                       3600.0)  # gap_s: no gap flagged between the samples
    assert role.method == "integrated_power"
    assert role.kwh == pytest.approx(0.3, rel=1e-12)


AGENT_TOML = """
[agent]
id = "npu-host"
state_dir = "{state_dir}"

[[sources]]
id = "npus"
type = "npu"
labels = {{ rack = "a01" }}
"""


def run_agent_once(tmp_path: Path) -> subprocess.CompletedProcess[str]:
    """`dcmeter agent once --json` (the venv's console script) with this test's PATH."""
    dcmeter = Path(sys.executable).with_name("dcmeter")
    assert dcmeter.exists(), f"{dcmeter} missing: pip install -e . into the venv"
    config = tmp_path / "agent.toml"
    config.write_text(AGENT_TOML.format(state_dir=tmp_path / "state"))
    return subprocess.run([str(dcmeter), "agent", "once", "-c", str(config), "--json"],
                          capture_output=True, text=True, cwd=tmp_path, timeout=60)


def test_cli_agent_once_prints_the_npus_readings(stub: Path, tmp_path: Path) -> None:
    StubState([StubNpu(0, [StubChip(0, "9.1", "37", "46", None, "Alarm")],
                       mcu_power_w="16.9")]).write(stub)
    proc = run_agent_once(tmp_path)
    assert proc.returncode == 0, proc.stderr
    records = [json.loads(line) for line in proc.stdout.splitlines()]
    values = {(r["metric"], r["labels"].get("chip_id")): r["value"] for r in records}
    assert values == {("npu_power_w", "0"): 9.1, ("npu_util_pct", "0"): 37.0,
                      ("npu_mem_util_pct", "0"): 46.0, ("npu_health", "0"): 2.0,
                      ("npu_board_power_w", None): 16.9}
    power = next(r for r in records if r["metric"] == "npu_power_w")
    assert (power["unit"], power["kind"]) == ("W", "gauge")
    assert power["labels"] == {"kind": "gpu", "rack": "a01", "npu_id": "0", "chip_id": "0"}


def test_cli_agent_once_without_npu_smi_fails_once_and_clearly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "nothing-here"))
    proc = run_agent_once(tmp_path)
    assert proc.returncode == 1  # a source failed
    assert proc.stdout == ""
    lines = [json.loads(line) for line in proc.stderr.splitlines()]
    assert len(lines) == 1, proc.stderr
    assert (lines[0]["event"], lines[0]["source"]) == ("target failed", "npus")
    assert lines[0]["reason"].endswith(MISSING)
