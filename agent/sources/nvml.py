"""`nvml` source: NVIDIA GPUs through NVML (nvidia-ml-py's module pynvml, imported when used).

Per GPU and read: power (the 1 s average and the instantaneous value where the driver has
them), the total-energy counter, GPU and memory utilisation. GPU energy is reported beside
GB 40879 point 8 (the servers' input), never instead of it: no `point` label by default.
"""

from __future__ import annotations

import asyncio
import re
import socket
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from typing import Annotated, Any, Literal, TypeVar

import structlog
from pydantic import Field, StrictInt, field_validator

from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo, device_map, now_ns
from dcmeter.agent.sources import DeviceError, SourceError, TargetUnreachable
from dcmeter.agent.sources.base import SourceConfigBase
from dcmeter.agent.sources.nvml_codes import (
    ERROR_INVALID_ARGUMENT,
    FI_POWER_AVERAGE,
    FI_POWER_INSTANT,
    HANDLE_ERRORS,
    LIBRARY_ERRORS,
    POWER_SCOPE_GPU,
    SUCCESS,
    UNSUPPORTED,
    code_of,
    field_number,
    init_error,
    read_error,
    text_of,
)

log = structlog.get_logger("dcmeter.agent.nvml")
_T = TypeVar("_T")

GPU_POWER = MetricSpec("gpu_power_w", "W")
GPU_POWER_INSTANT = MetricSpec("gpu_power_instant_w", "W")
# mJ since the driver loaded, 64 bits: it never wraps, so any decrease is a reset.
GPU_ENERGY = MetricSpec("gpu_energy_j", "J", "counter")
GPU_UTIL = MetricSpec("gpu_util_pct", "%")
GPU_MEM_UTIL = MetricSpec("gpu_mem_util_pct", "%")

# After a failed nvmlInit the next attempt waits this long, s: a host without an NVIDIA
# driver costs one attempt per 10 minutes, not one per tick.
INIT_RETRY_S = 600.0

# quantity -> (what the GPU lacks, what the source does without it), said once per GPU.
_NOTICES = {
    "power_avg": ("field 185 power average", "gpu_power_w from nvmlDeviceGetPowerUsage"),
    "power_instant": ("field 186 power instant", "gpu_power_instant_w left out"),
    "power": ("nvmlDeviceGetPowerUsage", "gpu_power_w left out"),
    "energy": ("nvmlDeviceGetTotalEnergyConsumption", "gpu_energy_j left out"),
    "util": ("nvmlDeviceGetUtilizationRates", "gpu_util_pct and gpu_mem_util_pct left out"),
}
_UUID = re.compile(r"^GPU-[0-9a-fA-F]{8}(-[0-9a-fA-F]{4}){3}-[0-9a-fA-F]{12}$")

MAX_GPU_INDEX = 1023
GpuIndex = Annotated[StrictInt, Field(ge=0, le=MAX_GPU_INDEX)]


class NvmlConfig(SourceConfigBase):
    """The GPUs of this host; `labels.kind` defaults to `gpu`.

    `gpus` is "all" or a list of NVML indices (as `nvidia-smi` numbers them, by PCI bus id,
    which may differ from CUDA's order) and UUIDs (`nvidia-smi -L`).
    """

    type: Literal["nvml"]
    gpus: Literal["all"] | list[GpuIndex | str] = "all"

    @field_validator("gpus", mode="before")
    @classmethod
    def _valid_selection(cls, gpus: Any) -> Any:
        if gpus == "all":
            return gpus
        if not isinstance(gpus, list):
            raise ValueError(
                'give "all" or a list of GPU indices and UUIDs, e.g. [0, 1] or '
                '["GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx"]'
            )
        if not gpus:
            raise ValueError('give at least one GPU index or UUID, or "all"')
        for g in gpus:
            if isinstance(g, bool) or not isinstance(g, int | str):
                raise ValueError(f"{g!r} is neither a GPU index nor a GPU UUID")
            if isinstance(g, int) and not 0 <= g <= MAX_GPU_INDEX:
                raise ValueError(f"GPU index {g} is out of range 0..{MAX_GPU_INDEX}")
            if isinstance(g, str) and not _UUID.match(g):
                raise ValueError(
                    f"{g!r} is not a GPU UUID: write it as nvidia-smi -L shows it "
                    "(GPU-xxxxxxxx-xxxx-xxxx-xxxx-xxxxxxxxxxxx; MIG instances are not "
                    "supported) or give the GPU index as a number"
                )
        keys = [g.lower() if isinstance(g, str) else g for g in gpus]
        duplicates = sorted({str(k) for k in keys if keys.count(k) > 1})
        if duplicates:
            raise ValueError(f"GPUs named twice: {', '.join(duplicates)}")
        return gpus

    def build(self) -> NvmlSource:
        """Make the source this config describes."""
        return NvmlSource(self)


@dataclass(slots=True)
class _Gpu:
    """One resolved GPU: its handle, identity and the quantities it turned out to lack."""

    index: int
    uuid: str
    name: str
    handle: Any
    unsupported: set[str] = field(default_factory=set)

    def labels(self) -> dict[str, str]:
        """Per-sample labels naming this GPU."""
        return {"gpu_uuid": self.uuid, "gpu_index": str(self.index), "gpu_name": self.name}

    def __str__(self) -> str:
        return f"GPU {self.index} {self.uuid} ({self.name})"


class NvmlSource:
    """The selected GPUs of this host through NVML.

    NVML is initialised on the first read and kept; after a failed nvmlInit (no driver, no
    library) the same error is raised without a new attempt for `init_retry_s`. NVML calls
    run off the event loop in a thread, one read at a time: a driver call that hangs holds
    one thread, and later reads fail at once until it returns.
    """

    def __init__(
        self,
        config: NvmlConfig,
        nvml: Any = None,
        clock: Callable[[], int] = now_ns,
        monotonic: Callable[[], float] = time.monotonic,
        init_retry_s: float = INIT_RETRY_S,
    ) -> None:
        labels = {"kind": "gpu", **config.labels}
        self.info = SourceInfo(config.id, "nvml", socket.gethostname(), labels, config.accuracy)
        self._selection = config.gpus
        self._nvml = nvml  # the pynvml module, imported on first use unless given
        self._clock = clock
        self._monotonic = monotonic
        self._init_retry_s = init_retry_s
        self._initialised = False
        self._init_failure: tuple[float, SourceError] | None = None  # (retry at, error)
        self._gpus: list[_Gpu] | None = None
        self._last_energy_mj: dict[str, int] = {}
        self._noticed: set[tuple[str, str]] = set()
        self._pending: Future[list[Reading]] | None = None

    async def read(self) -> list[Reading]:
        """Read every selected GPU once."""
        if self._pending is not None and not self._pending.done():
            raise TargetUnreachable(
                "an earlier NVML call has not returned: check the GPUs with nvidia-smi "
                "and the kernel log for Xid errors"
            )
        self._pending = self._in_thread(self._read_sync)
        return await asyncio.wrap_future(self._pending)

    def timeout_hint(self) -> str:
        """What no answer within timeout_s means for NVML (the poller's message)."""
        return "the NVIDIA driver did not answer: check nvidia-smi and the driver's state"

    async def close(self) -> None:
        """Shut NVML down unless a call still hangs in the driver."""
        if self._initialised and (self._pending is None or self._pending.done()):
            await asyncio.wrap_future(self._in_thread(self._shutdown))

    def _in_thread(self, work: Callable[[], _T]) -> Future[_T]:
        """Run `work` in a new daemon thread: a call stuck in the driver never blocks exit."""
        future: Future[_T] = Future()

        def run() -> None:
            if not future.set_running_or_notify_cancel():
                return
            try:
                future.set_result(work())
            except BaseException as exc:  # the future must finish, or reads stay refused
                future.set_exception(exc)

        threading.Thread(target=run, name=f"nvml-{self.info.id}", daemon=True).start()
        return future

    # --- in the worker thread -------------------------------------------------------------

    def _read_sync(self) -> list[Reading]:
        nvml = self._initialise()
        if self._gpus is None:
            self._gpus = self._resolve(nvml)
            self.info = replace(self.info, device=_identity(nvml, self._gpus))
        readings: list[Reading] = []
        for gpu in self._gpus:
            readings.extend(self._read_gpu(nvml, gpu))
        return readings

    def _module(self) -> Any:
        if self._nvml is None:
            try:
                import pynvml
            except ImportError as exc:
                raise DeviceError(
                    "the Python package nvidia-ml-py (module pynvml) is not installed"
                ) from exc
            self._nvml = pynvml
        return self._nvml

    def _initialise(self) -> Any:
        nvml = self._module()
        if self._initialised:
            return nvml
        if self._init_failure is not None:
            retry_at, error = self._init_failure
            if self._monotonic() < retry_at:
                raise type(error)(str(error))
        try:
            nvml.nvmlInit()
        except nvml.NVMLError as exc:
            error = init_error(code_of(exc), text_of(exc), self._init_retry_s)
            self._init_failure = (self._monotonic() + self._init_retry_s, error)
            raise type(error)(str(error)) from exc
        self._initialised = True
        self._init_failure = None
        try:
            driver = str(nvml.nvmlSystemGetDriverVersion())
        except nvml.NVMLError:
            driver = "unknown"
        log.info("nvml initialised", source=self.info.id, driver=driver)
        return nvml

    def _resolve(self, nvml: Any) -> list[_Gpu]:
        """Enumerate the GPUs NVML sees and pick the selected ones."""
        try:
            count = int(nvml.nvmlDeviceGetCount())
        except nvml.NVMLError as exc:
            raise self._error(code_of(exc), text_of(exc), None, "nvmlDeviceGetCount") from exc
        seen: list[_Gpu] = []
        broken: dict[int, str] = {}  # index -> why NVML could not open it
        for i in range(count):
            try:
                handle = nvml.nvmlDeviceGetHandleByIndex(i)
                uuid = str(nvml.nvmlDeviceGetUUID(handle))
                name = str(nvml.nvmlDeviceGetName(handle))
            except nvml.NVMLError as exc:
                if code_of(exc) in LIBRARY_ERRORS:
                    raise self._error(code_of(exc), text_of(exc), None, "GPU enumeration") from exc
                broken[i] = text_of(exc)
                continue
            seen.append(_Gpu(i, uuid, name, handle))
        listing = ", ".join(f"{g.index} {g.uuid} ({g.name})" for g in seen) or "none"
        listing += "".join(f", {i} (cannot open: {why})" for i, why in broken.items())
        if self._selection == "all":
            if broken:
                raise DeviceError(
                    f"not every GPU can be opened; GPUs seen: {listing}: check nvidia-smi "
                    "and the kernel log for Xid errors"
                )
            if not seen:
                raise DeviceError("NVML sees no GPU: check nvidia-smi -L")
            return seen
        chosen: dict[str, _Gpu] = {}
        missing: list[str] = []
        for want in self._selection:
            found = next((g for g in seen if _matches(g, want)), None)
            if found is None:
                missing.append(str(want))
            else:
                chosen.setdefault(found.uuid, found)
        if missing:
            raise DeviceError(
                f"GPU {', '.join(missing)} not found; GPUs seen: {listing}: check `gpus` "
                "against nvidia-smi -L"
            )
        return list(chosen.values())

    def _read_gpu(self, nvml: Any, gpu: _Gpu) -> list[Reading]:
        fields = self._power_fields(nvml, gpu)
        power_w = fields.get(FI_POWER_AVERAGE)
        if power_w is None:
            power_mw = self._call(nvml, gpu, "power", "nvmlDeviceGetPowerUsage")
            power_w = None if power_mw is None else float(power_mw) / 1000.0
        energy_mj = self._call(nvml, gpu, "energy", "nvmlDeviceGetTotalEnergyConsumption")
        util = self._call(nvml, gpu, "util", "nvmlDeviceGetUtilizationRates")
        ts_ns = self._clock()
        labels = gpu.labels()
        values: list[tuple[MetricSpec, float | None]] = [
            (GPU_POWER, power_w),
            (GPU_POWER_INSTANT, fields.get(FI_POWER_INSTANT)),
            (GPU_ENERGY, None if energy_mj is None else self._energy_j(gpu, int(energy_mj))),
            (GPU_UTIL, None if util is None else float(util.gpu)),
            (GPU_MEM_UTIL, None if util is None else float(util.memory)),
        ]
        return [Reading(spec, v, ts_ns, labels) for spec, v in values if v is not None]

    def _power_fields(self, nvml: Any, gpu: _Gpu) -> dict[int, float]:
        """Fields 185 (1 s average) and 186 (instant) in W, those the GPU has."""
        wanted = [
            (fid, name)
            for fid, name in ((FI_POWER_AVERAGE, "power_avg"), (FI_POWER_INSTANT, "power_instant"))
            if name not in gpu.unsupported
        ]
        if not wanted:
            return {}
        try:
            values = nvml.nvmlDeviceGetFieldValues(
                gpu.handle, [(fid, POWER_SCOPE_GPU) for fid, _ in wanted]
            )
        except nvml.NVMLError as exc:
            if code_of(exc) in UNSUPPORTED:
                for _, name in wanted:
                    self._unsupported(gpu, name)
                return {}
            raise self._error(code_of(exc), text_of(exc), gpu, "nvmlDeviceGetFieldValues") from exc
        out: dict[int, float] = {}
        for (fid, name), value in zip(wanted, values, strict=True):
            code = int(value.nvmlReturn)
            number = field_number(value) if code == SUCCESS else None
            if number is not None:
                out[fid] = number / 1000.0
            elif code in UNSUPPORTED or code == ERROR_INVALID_ARGUMENT:
                self._unsupported(gpu, name)
            elif code in HANDLE_ERRORS or code in LIBRARY_ERRORS:
                text = text_of(nvml.NVMLError(code))
                raise self._error(code, text, gpu, f"field {fid}")
            # Anything else (no data yet, a timeout) leaves the field out of this read.
        return out

    def _call(self, nvml: Any, gpu: _Gpu, quantity: str, function: str) -> Any:
        """Call one NVML device function; None where the GPU lacks it."""
        if quantity in gpu.unsupported:
            return None
        try:
            return getattr(nvml, function)(gpu.handle)
        except nvml.NVMLError as exc:
            if code_of(exc) in UNSUPPORTED:
                self._unsupported(gpu, quantity)
                return None
            raise self._error(code_of(exc), text_of(exc), gpu, function) from exc

    def _unsupported(self, gpu: _Gpu, quantity: str) -> None:
        """Leave a quantity out from now on; say so once per GPU and quantity."""
        gpu.unsupported.add(quantity)
        if (gpu.uuid, quantity) in self._noticed:
            return
        self._noticed.add((gpu.uuid, quantity))
        call, effect = _NOTICES[quantity]
        log.info(
            "nvml call not supported", source=self.info.id, gpu_uuid=gpu.uuid,
            gpu_index=gpu.index, call=call, effect=effect,
        )

    def _energy_j(self, gpu: _Gpu, energy_mj: int) -> float:
        """The counter in J, raw; a decrease (driver reload) is logged, the value kept."""
        previous = self._last_energy_mj.get(gpu.uuid)
        self._last_energy_mj[gpu.uuid] = energy_mj
        if previous is not None and energy_mj < previous:
            log.warning(
                "gpu energy counter reset", source=self.info.id, gpu_uuid=gpu.uuid,
                previous_j=previous / 1000.0, value_j=energy_mj / 1000.0,
            )
        return energy_mj / 1000.0

    def _error(self, code: int, text: str, gpu: _Gpu | None, call: str) -> SourceError:
        """Translate an NVML error met during a read; forget what it made invalid."""
        if code in LIBRARY_ERRORS:
            self._shutdown()
        elif code in HANDLE_ERRORS:
            self._gpus = None
        return read_error(code, text, str(gpu) if gpu is not None else "NVML", call)

    def _shutdown(self) -> None:
        """Release NVML (errors ignored: the driver may already be gone)."""
        if self._initialised and self._nvml is not None:
            try:
                self._nvml.nvmlShutdown()
            except self._nvml.NVMLError as exc:
                log.debug("nvml shutdown failed", source=self.info.id, error=text_of(exc))
        self._initialised = False
        self._gpus = None


def _matches(gpu: _Gpu, want: int | str) -> bool:
    if isinstance(want, int):
        return gpu.index == want
    return gpu.uuid.lower() == want.lower()



def _identity(nvml: Any, gpus: list[_Gpu]) -> dict[str, str]:
    """The GPUs' names, UUIDs and board serials (nvmlDeviceGetSerial; a GPU without one, or
    an NVML without the call, has none), space-separated in the order the source reads them."""
    serials: list[str] = []
    for gpu in gpus:
        try:
            serials.append(str(nvml.nvmlDeviceGetSerial(gpu.handle)))
        except (nvml.NVMLError, AttributeError):
            serials = []
            break
    names = sorted({g.name for g in gpus})
    return device_map(
        make="NVIDIA", model=", ".join(names),
        uuid=" ".join(g.uuid for g in gpus), serial=" ".join(serials) or None,
    )
