"""How the `ipmi` source words what goes wrong: pyipmi and OS exceptions to its own errors.

No answer becomes TargetUnreachable, an answer with an error DeviceError, each with a
message that says what to check and never the password. pyipmi.errors is imported inside
`translate`, when an error is met, so loading a config does not import pyipmi.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from dcmeter.agent.sources import DeviceError, SourceError, TargetUnreachable

if TYPE_CHECKING:
    from dcmeter.agent.sources.ipmi_config import IpmiSettings
CC_INVALID_COMMAND = 0xC1
CC_INSUFFICIENT_PRIVILEGE = 0xD4

# RMCP+ message status codes that mean the account was refused (IPMI v2.0, table 13-15).
_MSC_ACCOUNT = {0x09: "invalid role", 0x0A: "privilege not allowed", 0x0D: "unknown user name"}
# ... and those that mean the BMC accepts none of the offered cipher suites.
_MSC_CIPHER = {0x04, 0x05, 0x06, 0x07, 0x10, 0x11}


def translate(
    exc: Exception, where: str, cfg: IpmiSettings, request_timeout_s: float
) -> SourceError:
    """Turn a pyipmi or OS exception met at `where` into TargetUnreachable or DeviceError."""
    from pyipmi.errors import (
        AuthenticationError,
        CompletionCodeError,
        IpmiConnectionError,
        IpmiTimeoutError,
        MessageStatusCodeError,
        RetryError,
    )

    if isinstance(exc, FileNotFoundError) and cfg.interface == "local":
        return TargetUnreachable(
            f"{where}: no BMC device {cfg.device}: load the kernel modules "
            "(modprobe ipmi_si ipmi_devintf) or poll the BMC with interface = lanplus"
        )
    if isinstance(exc, PermissionError) and cfg.interface == "local":
        return TargetUnreachable(
            f"{where}: permission denied on {cfg.device}: run the agent as a user "
            "allowed to open it"
        )
    if isinstance(exc, IpmiConnectionError | RetryError | IpmiTimeoutError | TimeoutError):
        return TargetUnreachable(
            f"{where}: no answer within {request_timeout_s:g} s: check host, port, "
            "that IPMI over LAN is enabled on the BMC and that UDP reaches it"
        )
    if isinstance(exc, ConnectionRefusedError):
        return TargetUnreachable(
            f"{where}: connection refused: check host and port, is the BMC up?"
        )
    if isinstance(exc, OSError):
        return TargetUnreachable(f"{where}: {exc.strerror or exc}")
    if isinstance(exc, AuthenticationError):
        return DeviceError(f"{where}: authentication failed: check username and password")
    if isinstance(exc, MessageStatusCodeError):
        if exc.msc in _MSC_ACCOUNT:
            return DeviceError(
                f"{where}: the BMC refused the account ({_MSC_ACCOUNT[exc.msc]}): check "
                f"username and that it may log in at privilege {cfg.privilege}"
            )
        if exc.msc in _MSC_CIPHER:
            tried = cfg.cipher_suite or "17 and 3"
            return DeviceError(
                f"{where}: the BMC accepts none of the cipher suites tried ({tried}): "
                "set cipher_suite to one it supports (`ipmitool lan print` lists them)"
            )
        return DeviceError(f"{where}: the BMC refused the session: {exc.msc_desc}")
    if isinstance(exc, CompletionCodeError):
        if exc.cc == CC_INSUFFICIENT_PRIVILEGE:
            return DeviceError(
                f"{where}: insufficient privilege (completion code 0xD4) at privilege "
                f'{cfg.privilege}: set privilege = "operator" or "administrator" '
                "(the account must be allowed it)"
            )
        return DeviceError(f"{where}: completion code {exc.cc:#04x} ({exc.cc_desc})")
    return DeviceError(f"{where}: bad answer: {type(exc).__name__}: {exc}")
