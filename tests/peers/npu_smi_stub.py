"""A stub `npu-smi` for testing the npu source: prints Huawei's documented output formats.

`install_stub(dir, state_file)` writes an executable `npu-smi` into dir (a shell script that
runs this file with the test's Python); put dir first on PATH. On every run the stub reads
the NPUs it pretends to have from the JSON state file (`StubState`), so a test can change
values between two reads. The texts copy the layout of the examples in Huawei's npu-smi
reference (hiascend.com npusmi_012 `info -l`, npusmi_008 `-t board`, npusmi_023 `-t power`,
npusmi_019 `-t usages`, npusmi_027 `-t health`): "key : value" lines padded to column 40,
a blank line between the header and each chip, the MCU block last. Values are strings, so a
test can print "NA" where npu-smi does.
"""

from __future__ import annotations

import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

STATE_ENV = "NPU_SMI_STUB_STATE"


@dataclass
class StubChip:
    """One chip of an NPU; every value as npu-smi prints it ("NA" where absent)."""

    chip_id: int = 0
    power_w: str = "NA"  # NPU Real-time Power(W), or Power Dissipation(W) if power_key says
    aicore_pct: str = "NA"
    memory_pct: str = "NA"
    hbm_pct: str | None = None  # HBM Usage Rate(%) line printed only when set
    health: str = "OK"


@dataclass
class StubNpu:
    """One NPU (card) with its chips; `mcu_power_w` None: no MCU block (training cards)."""

    npu_id: int
    chips: list[StubChip] = field(default_factory=lambda: [StubChip()])
    product: str = "Atlas 300I Pro"
    serial: str = "NA"
    firmware: str = "7.1.0.4.218"
    board_id: str = "0x45"
    mcu_power_w: str | None = None
    power_key: str = "NPU Real-time Power(W)"


@dataclass
class StubState:
    """What the stub prints; `fail_exit` makes every run print `fail_message` and exit so;
    `hang_s` makes every run sleep first."""

    npus: list[StubNpu] = field(default_factory=list)
    fail_exit: int = 0
    fail_message: str = ""
    hang_s: float = 0.0

    def write(self, path: Path) -> None:
        """Store the state where the stub reads it (atomically: a run never sees half)."""
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(asdict(self)))
        tmp.replace(path)


def install_stub(directory: Path, state_file: Path) -> Path:
    """Write the executable `npu-smi` into directory; return directory."""
    directory.mkdir(parents=True, exist_ok=True)
    script = directory / "npu-smi"
    script.write_text(
        "#!/bin/sh\n"
        f"{STATE_ENV}={shlex.quote(str(state_file))} exec {shlex.quote(sys.executable)} "
        f"{shlex.quote(str(Path(__file__).resolve()))} \"$@\"\n"
    )
    script.chmod(0o755)
    return directory


def _line(key: str, value: object) -> str:
    return f"        {key:<31}: {value}"


def _load() -> StubState:
    raw = json.loads(Path(os.environ[STATE_ENV]).read_text())
    npus = [StubNpu(**{**n, "chips": [StubChip(**c) for c in n["chips"]]}) for n in raw["npus"]]
    return StubState(npus, raw["fail_exit"], raw["fail_message"], raw["hang_s"])


def render(state: StubState, args: list[str]) -> tuple[int, str]:
    """npu-smi's exit status and output for args."""
    if args == ["info", "-l"]:
        lines = [_line("Card Count", len(state.npus)), ""]
        for n in state.npus:
            lines += [_line("NPU ID", n.npu_id), _line("Product Name", n.product),
                      _line("Serial Number", n.serial), _line("Chip Count", len(n.chips)), ""]
        return 0, "\n".join(lines)
    if len(args) == 5 and args[:2] == ["info", "-t"] and args[3] == "-i":
        kind, wanted = args[2], args[4]
        npu = next((n for n in state.npus if str(n.npu_id) == wanted), None)
        if npu is None:
            return 2, "Error: the device id is invalid."  # any failure will do here
        return 0, _per_kind(kind, npu)
    return 2, f"Usage: npu-smi info ... (stub does not know {' '.join(args)})"


def _per_kind(kind: str, npu: StubNpu) -> str:
    if kind == "board":
        return "\n".join([
            _line("NPU ID", npu.npu_id), _line("Product Name", npu.product),
            _line("Model", "NA"), _line("Manufacturer", "Huawei"),
            _line("Serial Number", npu.serial), _line("Software Version", "24.1.RC2"),
            _line("Firmware Version", npu.firmware), _line("Board ID", npu.board_id),
            _line("PCB ID", "B"), _line("BOM ID", "1"), _line("Chip Count", len(npu.chips)),
            _line("Faulty Chip Count", 0), "",
        ])
    lines = [_line("NPU ID", npu.npu_id), _line("Chip Count", len(npu.chips)), ""]
    for chip in npu.chips:
        lines.append(_line("Chip ID", chip.chip_id))
        if kind == "power":
            lines.append(_line(npu.power_key, chip.power_w))
        elif kind == "usages":
            lines += [_line("Memory Capacity(MB)", 10810),
                      _line("Memory Usage Rate(%)", chip.memory_pct)]
            if chip.hbm_pct is not None:
                lines.append(_line("HBM Usage Rate(%)", chip.hbm_pct))
            lines += [_line("Hugepages Total(page)", 1304), _line("Hugepages Usage Rate(%)", 0),
                      _line("Aicore Usage Rate(%)", chip.aicore_pct),
                      _line("Aicpu Usage Rate(%)", 0), _line("Ctrlcpu Usage Rate(%)", 1),
                      _line("Memory Bandwidth Usage Rate(%)", 0)]
        elif kind == "health":
            lines.append(_line("Health", chip.health))
        else:
            return f"Usage: npu-smi info -t ... (stub does not know {kind})"
        lines.append("        ")
    if npu.mcu_power_w is not None:
        if kind == "power":
            lines += [_line("Power Dissipation(W)", npu.mcu_power_w), _line("Chip Name", "MCU")]
        elif kind == "health":
            lines += [_line("Health", "OK"), _line("Chip Name", "MCU")]
    return "\n".join(lines) + "\n"


def main() -> int:
    state = _load()
    if state.hang_s:
        time.sleep(state.hang_s)
    if state.fail_exit:
        print(state.fail_message, file=sys.stderr)
        return state.fail_exit
    code, text = render(state, sys.argv[1:])
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


if __name__ == "__main__":
    sys.exit(main())
