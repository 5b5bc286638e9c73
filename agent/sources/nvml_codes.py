"""What NVML's numbers mean: nvml.h return codes, field ids and value types.

Decodes one nvmlFieldValue_t and turns NVML return codes into the project's errors, with
messages that say what to check. Pure: no pynvml import (exceptions are read by duck
typing), no state; what an error invalidates is the caller's business.
"""

from __future__ import annotations

from typing import Any

from dcmeter.agent.sources import DeviceError, SourceError, TargetUnreachable

# Field ids and power scope (nvml.h); field values are in mW.
FI_POWER_AVERAGE = 185
FI_POWER_INSTANT = 186
POWER_SCOPE_GPU = 0

# Return codes (nvml.h).
SUCCESS = 0
ERROR_UNINITIALIZED = 1
ERROR_INVALID_ARGUMENT = 2
ERROR_NOT_SUPPORTED = 3
ERROR_NO_PERMISSION = 4
ERROR_DRIVER_NOT_LOADED = 9
ERROR_LIBRARY_NOT_FOUND = 12
ERROR_FUNCTION_NOT_FOUND = 13
ERROR_GPU_IS_LOST = 15
ERROR_RESET_REQUIRED = 16
ERROR_LIB_RM_VERSION_MISMATCH = 18
ERROR_GPU_NOT_FOUND = 28

# The GPU cannot be used any more: its handle is dropped and the GPUs resolved again.
HANDLE_ERRORS = frozenset({ERROR_GPU_IS_LOST, ERROR_RESET_REQUIRED, ERROR_GPU_NOT_FOUND})
# NVML itself is gone: shut down and initialise again on the next read.
LIBRARY_ERRORS = frozenset(
    {ERROR_UNINITIALIZED, ERROR_DRIVER_NOT_LOADED, ERROR_LIBRARY_NOT_FOUND,
     ERROR_LIB_RM_VERSION_MISMATCH}
)
# The driver or GPU lacks this call or field: left out from then on.
UNSUPPORTED = frozenset({ERROR_NOT_SUPPORTED, ERROR_FUNCTION_NOT_FOUND})

# NVML field value types (nvmlValueType_t) -> member of the nvmlValue_t union.
_VALUE_MEMBERS = {0: "dVal", 1: "uiVal", 2: "ulVal", 3: "ullVal", 4: "sllVal", 5: "siVal",
                  6: "usVal"}


def field_number(value: Any) -> float | None:
    """Return the number in one nvmlFieldValue_t by its value type; None for an unknown type."""
    member = _VALUE_MEMBERS.get(int(value.valueType))
    return None if member is None else float(getattr(value.value, member))


def code_of(exc: Any) -> int:
    """The NVML return code a pynvml NVMLError carries; -1 when it carries none."""
    return int(getattr(exc, "value", -1))


def text_of(exc: Any) -> str:
    """The message of a pynvml NVMLError, or its code when the library cannot say."""
    try:
        return str(exc)
    except Exception:  # the bindings ask the library, which may be gone
        return f"NVML error {code_of(exc)}"


def init_error(code: int, text: str, retry_s: float) -> SourceError:
    """Translate a failed nvmlInit; the next attempt is `retry_s` seconds away."""
    retry = f"next attempt in {retry_s:g} s"
    if code == ERROR_LIBRARY_NOT_FOUND:
        return TargetUnreachable(
            "NVML library libnvidia-ml.so.1 not found: no NVIDIA driver on this host; "
            f"install the driver or remove this source ({retry})"
        )
    if code == ERROR_DRIVER_NOT_LOADED:
        return TargetUnreachable(
            "the NVIDIA kernel driver is not loaded: check nvidia-smi and "
            f"`lsmod | grep nvidia` ({retry})"
        )
    if code == ERROR_LIB_RM_VERSION_MISMATCH:
        return DeviceError(
            "NVML and the loaded NVIDIA kernel driver differ in version (driver upgraded "
            f"without a reboot?): reload the nvidia modules or reboot ({retry})"
        )
    if code == ERROR_NO_PERMISSION:
        return DeviceError(
            f"no permission to initialise NVML: check access to /dev/nvidia* ({retry})"
        )
    return DeviceError(f"nvmlInit failed: {text} (NVML error {code}) ({retry})")


def read_error(code: int, text: str, where: str, call: str) -> SourceError:
    """Translate an NVML error that `call` met on `where` (a GPU, or "NVML") during a read."""
    if code in LIBRARY_ERRORS:
        if code == ERROR_DRIVER_NOT_LOADED:
            return TargetUnreachable(
                f"{where}: the NVIDIA kernel driver is gone ({call}): check nvidia-smi "
                "and `lsmod | grep nvidia`"
            )
        return DeviceError(
            f"{where}: {call}: {text}: the driver was reloaded or upgraded? check "
            "nvidia-smi; NVML is initialised again on the next read"
        )
    if code in HANDLE_ERRORS:
        return DeviceError(
            f"{where}: {text} ({call}): check nvidia-smi and the kernel log for Xid "
            "errors; the GPU may need a reset or the host a reboot"
        )
    if code == ERROR_NO_PERMISSION:
        return DeviceError(f"{where}: {call}: no permission: check access to /dev/nvidia*")
    return DeviceError(f"{where}: {call} failed: {text} (NVML error {code})")
