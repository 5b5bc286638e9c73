"""The `ipmi` source's settings: what a BMC target is and how to log in to it.

Kept apart from the source (ipmi.py) so that the error translation (ipmi_errors.py) can read
a target's settings without importing the source that uses it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator, model_validator

from dcmeter.agent.sources.base import SourceConfigBase
from dcmeter.base.configfile import ConfigError, read_secret_file

MAX_USERNAME_BYTES = 16  # IPMI v2.0, section 13.20 (RAKP message 1)
MAX_PASSWORD_BYTES = 20  # IPMI v2.0 passwords; 16 for IPMI v1.5 accounts


class IpmiSettings(SourceConfigBase):
    """A BMC reached over RMCP+ (`lanplus`) or through the host's BMC device (`local`).

    `privilege` defaults to `user`, the level DCMI 1.5 specifies for Get Power Reading, so a
    read-only BMC account is enough; some BMCs (OpenIPMI's ipmi_sim among them) want more and
    answer "insufficient privilege", the error then says to raise it. `cipher_suite` None
    tries 17 (SHA-256, AES) and then 3 (SHA-1, AES). `sdr_sensors` name (str) or number
    (int) the SDR power sensors whose sum stands in for DCMI on a BMC without DCMI.

    `keep_alive_s` (lanplus): after this many idle seconds the agent sends Get Device ID on
    the session so the BMC does not expire it (0: never). BMCs expire an idle session after
    about 60 s (IPMI v2.0's default session inactivity timeout; the simulator's too), so the
    default 40 keeps a session open at any poll interval with 20 s to spare: at `interval_s`
    up to 40 no keep-alive is sent at all (every read keeps the session alive); at the
    default interval 60, one, 40 s after each read (the next would fall at 80 s, after the
    next read, so none meets a read). Lower it for a BMC with a shorter timeout: one that
    expires the session anyway costs a new session within the next read, not a failed read.
    Before issue 20 the default was 10: five keep-alives a minute per BMC at interval 60.
    """

    type: Literal["ipmi"]
    interface: Literal["lanplus", "local"] = "lanplus"
    host: str | None = Field(default=None, min_length=1)
    port: int = Field(default=623, ge=1, le=65535)
    username: str = ""
    password: SecretStr | None = None
    password_file: Path | None = None
    cipher_suite: Literal[1, 2, 3, 15, 16, 17] | None = None
    privilege: Literal["user", "operator", "administrator"] = "user"
    bmc_address: int = Field(default=0x20, ge=0, le=0xFF)
    device: Path = Path("/dev/ipmi0")
    keep_alive_s: int = Field(default=40, ge=0, le=300)
    sdr_sensors: list[str | int] = Field(default_factory=list)

    @field_validator("username")
    @classmethod
    def _short_username(cls, username: str) -> str:
        if len(username.encode()) > MAX_USERNAME_BYTES:
            raise ValueError(f"IPMI user names have at most {MAX_USERNAME_BYTES} bytes")
        return username

    @field_validator("password")
    @classmethod
    def _short_password(cls, password: SecretStr | None) -> SecretStr | None:
        if password is not None and len(password.get_secret_value().encode()) > MAX_PASSWORD_BYTES:
            raise ValueError(f"IPMI passwords have at most {MAX_PASSWORD_BYTES} bytes")
        return password

    @field_validator("sdr_sensors")
    @classmethod
    def _sensor_refs(cls, sensors: list[str | int]) -> list[str | int]:
        for s in sensors:
            if isinstance(s, int) and not 0 <= s <= 0xFE:
                raise ValueError("sensor numbers are 0..254")
            if isinstance(s, str) and not s.strip():
                raise ValueError("sensor names must not be empty")
        return sensors

    @model_validator(mode="after")
    def _credentials_fit_interface(self) -> IpmiSettings:
        given = [k for k in ("password", "password_file") if getattr(self, k) is not None]
        if self.interface == "lanplus":
            if self.host is None:
                raise ValueError("interface lanplus needs host (the BMC's address)")
            if len(given) != 1:
                raise ValueError("interface lanplus needs exactly one of password, password_file")
        elif given or self.host is not None:
            raise ValueError(
                "interface local talks to the host's own BMC device: "
                "host, password and password_file are not used, remove them"
            )
        return self

    def read_password(self) -> str:
        """The password, from `password` or read from `password_file` (one trailing newline
        stripped); raise ConfigError naming the file when it is unusable."""
        if self.password is not None:
            return self.password.get_secret_value()
        if self.password_file is None:
            return ""
        where = f"source {self.id}: password_file {self.password_file}"
        secret = read_secret_file(self.password_file, where)
        if len(secret.encode()) > MAX_PASSWORD_BYTES:
            raise ConfigError(f"{where}: IPMI passwords have at most {MAX_PASSWORD_BYTES} bytes")
        return secret
