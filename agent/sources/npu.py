"""`npu` source: Huawei Ascend NPUs through Huawei's `npu-smi` tool (its documented text output).

Per NPU chip and read: power (`npu-smi info -t power -i ID`), AI Core and memory
utilisation (`-t usages`), health (`-t health`); per card the board's power where npu-smi
prints it (the MCU block's "Power Dissipation(W)"). Identity once per session from
`npu-smi info -l` and `npu-smi info -t board -i ID`. Formats and their sources: npu_parse.py.

npu-smi has no energy counter: the collector integrates `npu_power_w` (as it does for any
power gauge). Why npu-smi and not the DCMI library (libdcmi.so, documented at hiascend.com
"DCMI API参考", e.g. dcmi_get_device_power_info in 0.1 W units): npu-smi ships with every
Ascend driver install and runs as the driver's non-root run group; binding libdcmi through
ctypes needs its C structs per driver release, and a stub of it could only echo our own
reading of those pages — the stub `npu-smi` on PATH (tests/peers/npu_smi_stub.py) prints the
documented text itself. NPU energy is reported beside GB 40879 point 8 (the servers' input),
never instead of it: no `point` label by default; `kind` defaults to `gpu`, the accelerator
kind the collector's AI evaluation and plausibility limits know.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import socket
from collections.abc import Callable
from dataclasses import replace
from typing import Annotated, Any, Literal

import structlog
from pydantic import Field, StrictInt, field_validator

from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo, device_map, now_ns
from dcmeter.agent.sources import DeviceError, SourceError, TargetUnreachable
from dcmeter.agent.sources.base import SourceConfigBase
from dcmeter.agent.sources.npu_parse import (
    ChipFields,
    OutputError,
    board,
    chip_fields,
    health_code,
    listed_npus,
    number,
)

log = structlog.get_logger("dcmeter.agent.npu")

NPU_POWER = MetricSpec("npu_power_w", "W")  # per chip: "NPU Real-time Power(W)"
NPU_BOARD_POWER = MetricSpec("npu_board_power_w", "W")  # per card: the MCU's reading
NPU_UTIL = MetricSpec("npu_util_pct", "%")  # "Aicore Usage Rate(%)"
NPU_MEM_UTIL = MetricSpec("npu_mem_util_pct", "%")  # "Memory Usage Rate(%)"
NPU_HBM_UTIL = MetricSpec("npu_hbm_util_pct", "%")  # "HBM Usage Rate(%)"
NPU_HEALTH = MetricSpec("npu_health", "1")  # 0 OK, 1 Warning, 2 Alarm, 3 Critical, 4 UNKNOWN

MISSING = "npu-smi not found on PATH: install the Ascend driver package or set `npu_smi`"
MAX_NPU_ID = 1023
NpuId = Annotated[StrictInt, Field(ge=0, le=MAX_NPU_ID)]
_ERROR_TEXT = 200  # characters of npu-smi's own message kept in an error


class NpuConfig(SourceConfigBase):
    """The Ascend NPUs of this host; `labels.kind` defaults to `gpu` (accelerator).

    `npus` is "all" or a list of NPU IDs as `npu-smi info -l` prints them. `npu_smi` is the
    command: a name looked up on PATH or an absolute path.
    """

    type: Literal["npu"]
    npus: Literal["all"] | list[NpuId] = "all"
    npu_smi: str = Field(default="npu-smi", min_length=1)

    @field_validator("npus")
    @classmethod
    def _distinct(cls, npus: Literal["all"] | list[int]) -> Literal["all"] | list[int]:
        if isinstance(npus, list):
            if not npus:
                raise ValueError('give at least one NPU ID, or "all"')
            twice = sorted({n for n in npus if npus.count(n) > 1})
            if twice:
                raise ValueError(f"NPU IDs named twice: {', '.join(map(str, twice))}")
        return npus

    def build(self) -> NpuSource:
        """Make the source this config describes."""
        return NpuSource(self)


class NpuSource:
    """The selected NPUs of this host, read by running npu-smi (an asyncio subprocess each).

    Each npu-smi run has `timeout_s`; a run still going when the read is cancelled or times
    out is killed. The NPU list and identity are read on the first read and kept until a
    read fails.
    """

    def __init__(self, config: NpuConfig, clock: Callable[[], int] = now_ns) -> None:
        labels = {"kind": "gpu", **config.labels}
        self.info = SourceInfo(config.id, "npu", socket.gethostname(), labels, config.accuracy)
        self._selection = config.npus
        self._command = config.npu_smi
        self._timeout_s = config.timeout_s
        self._clock = clock
        self._npus: list[int] | None = None

    async def read(self) -> list[Reading]:
        """Read every selected NPU once."""
        try:
            if self._npus is None:
                self._npus = await self._resolve()
            per_npu = await asyncio.gather(*(self._read_npu(n) for n in self._npus))
        except SourceError:
            self._npus = None  # an NPU may have gone or come back: list them again
            raise
        return [r for readings in per_npu for r in readings]

    def timeout_hint(self) -> str:
        """What no answer within timeout_s means for npu-smi (the poller's message)."""
        return "npu-smi did not answer: check `npu-smi info` and the Ascend driver's state"

    async def close(self) -> None:
        """Nothing is held between reads."""

    # --- reads --------------------------------------------------------------------------

    async def _resolve(self) -> list[int]:
        listed = listed_npus(await self._run("info", "-l"))
        ids = [n.npu_id for n in listed]
        if not ids:
            raise DeviceError("npu-smi info -l lists no NPU: check the Ascend driver")
        if self._selection == "all":
            chosen = ids
        else:
            missing = [n for n in self._selection if n not in ids]
            if missing:
                raise DeviceError(
                    f"NPU {', '.join(map(str, missing))} not found; npu-smi info -l lists "
                    f"{', '.join(map(str, ids))}: check `npus`"
                )
            chosen = list(self._selection)
        boards = await asyncio.gather(*(self._run("info", "-t", "board", "-i", str(n))
                                        for n in chosen))
        self.info = replace(self.info, device=_identity(
            [board(text) for text in boards],
            [n for n in listed if n.npu_id in chosen],
        ))
        return chosen

    async def _read_npu(self, npu: int) -> list[Reading]:
        texts = await asyncio.gather(*(
            self._run("info", "-t", kind, "-i", str(npu)) for kind in ("power", "usages", "health")
        ))
        ts_ns = self._clock()
        power, usages, health = (self._fields(npu, k, t) for k, t in
                                 zip(("power", "usages", "health"), texts, strict=True))
        out: list[Reading] = []
        try:
            for chip in sorted({*power.chips, *usages.chips, *health.chips}):
                labels = {"npu_id": str(npu), "chip_id": str(chip)}
                p = power.chips.get(chip, {})
                u = usages.chips.get(chip, {})
                # "NPU Real-time Power(W)" where the card also has an MCU; training cards
                # (no MCU) print the chip's power as "Power Dissipation(W)" in its block.
                watts = number(p.get("NPU Real-time Power(W)"))
                if watts is None:
                    watts = number(p.get("Power Dissipation(W)"))
                values = [
                    (NPU_POWER, watts),
                    (NPU_UTIL, number(u.get("Aicore Usage Rate(%)"))),
                    (NPU_MEM_UTIL, number(u.get("Memory Usage Rate(%)"))),
                    (NPU_HBM_UTIL, number(u.get("HBM Usage Rate(%)"))),
                    (NPU_HEALTH, _health(health.chips.get(chip, {}))),
                ]
                out += [Reading(s, float(v), ts_ns, labels) for s, v in values if v is not None]
            board_w = number(power.card.get("Power Dissipation(W)"))
        except OutputError as exc:
            raise DeviceError(f"npu-smi info for NPU {npu}: output not understood: {exc}") from exc
        if board_w is not None:
            out.append(Reading(NPU_BOARD_POWER, board_w, ts_ns, {"npu_id": str(npu)}))
        return out

    def _fields(self, npu: int, kind: str, text: str) -> ChipFields:
        try:
            fields = chip_fields(text)
        except OutputError as exc:
            raise DeviceError(
                f"npu-smi info -t {kind} -i {npu}: output not understood: {exc}"
            ) from exc
        if not fields.chips and not fields.card:
            raise DeviceError(
                f"npu-smi info -t {kind} -i {npu} printed no \"key : value\" line: "
                f"{_first_line(text) or 'nothing'}"
            )
        return fields

    async def _run(self, *args: str) -> str:
        """Run npu-smi with args; its stdout, or one clear SourceError."""
        program = self._program()
        shown = "npu-smi " + " ".join(args)
        try:
            proc = await asyncio.create_subprocess_exec(
                program, *args, stdin=asyncio.subprocess.DEVNULL,
                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            )
        except FileNotFoundError:
            raise DeviceError(MISSING) from None
        except PermissionError:
            raise DeviceError(
                f"{program} cannot be run (permission denied): npu-smi needs root or the "
                "driver's run group (HwHiAiUser)"
            ) from None
        try:
            out, err = await asyncio.wait_for(proc.communicate(), self._timeout_s)
        except TimeoutError:
            raise TargetUnreachable(
                f"`{shown}` did not answer within {self._timeout_s:g} s: check the Ascend "
                "driver (npu-smi info) and the kernel log"
            ) from None
        finally:
            if proc.returncode is None:  # timed out or cancelled: never leave it running
                with contextlib.suppress(ProcessLookupError):
                    proc.kill()
                with contextlib.suppress(Exception):
                    await asyncio.shield(proc.wait())
        if proc.returncode != 0:
            why = _first_line(err.decode(errors="replace")) or _first_line(
                out.decode(errors="replace")) or "no message"
            raise DeviceError(f"`{shown}` failed (exit {proc.returncode}): {why}")
        return out.decode(errors="replace")

    def _program(self) -> str:
        """The npu-smi to run: an absolute path as given, a bare name looked up on PATH."""
        if os.sep in self._command:
            if not os.path.isfile(self._command):
                raise DeviceError(f"npu-smi not found at {self._command}: check `npu_smi`")
            return self._command
        found = shutil.which(self._command)
        if found is None:
            raise DeviceError(MISSING)
        return found


def _health(fields: dict[str, str]) -> int | None:
    """The chip's health code from "Health" (all chips) or "Health Status" (one chip)."""
    return health_code(fields.get("Health", fields.get("Health Status")))


def _first_line(text: str) -> str:
    for line in text.splitlines():
        if line.strip():
            return line.strip()[:_ERROR_TEXT]
    return ""


def _identity(boards: list[dict[str, str]], listed: list[Any]) -> dict[str, str]:
    """Make, product names, serials, firmware and board ids of the chosen NPUs, in order
    (`npu-smi info -t board`, else `npu-smi info -l` for the serial)."""

    def joined(key: str, extra: list[str | None] | None = None) -> str | None:
        values = [b.get(key) for b in boards]
        if extra is not None:
            values = [v or e for v, e in zip(values, extra, strict=False)]
        # Only when every NPU has one: a hole would pair values with the wrong NPU.
        return " ".join(v for v in values if v) if values and all(values) else None

    makes = sorted({b["Manufacturer"] for b in boards if b.get("Manufacturer")})
    models = sorted({v for b in boards for v in (b.get("Product Name"), b.get("Model")) if v})
    models += sorted({n.product for n in listed if n.product and n.product not in models})
    serials = joined("Serial Number", [n.serial for n in listed])
    return device_map(
        make=", ".join(makes) or "Huawei", model=", ".join(models) or None, serial=serials,
        firmware=joined("Firmware Version"), device_id=joined("Board ID"),
    )
