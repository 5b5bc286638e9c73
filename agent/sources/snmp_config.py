"""The `snmp` source's settings: the target, its SNMP version and credentials, its ports.

Kept apart from the source (snmp.py) so that the SNMP client (snmp_client.py) can read a
target's settings without importing the source that uses it.
"""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from dcmeter.agent.sources.base import SourceConfigBase
from dcmeter.agent.sources.pdu_mibs import ProfileName
from dcmeter.agent.sources.snmp_oids import Port

AuthProtocol = Literal["MD5", "SHA", "SHA-224", "SHA-256", "SHA-384", "SHA-512"]
PrivProtocol = Literal["DES", "AES", "AES-128", "AES-192", "AES-256", "AES-192-C", "AES-256-C"]
SecurityLevel = Literal["noAuthNoPriv", "authNoPriv", "authPriv"]
PositiveBps = Annotated[float, Field(gt=0)]


class InterfaceSelection(BaseModel):
    """Which ports of a switch to read: any combination of names, alias pattern, indexes."""

    model_config = ConfigDict(extra="forbid")

    if_names: list[Annotated[str, Field(min_length=1)]] = Field(default_factory=list)
    if_alias_pattern: str | None = None
    if_indexes: list[Annotated[int, Field(ge=1, le=2**31 - 1)]] = Field(default_factory=list)
    # One line rate (bit/s) for every selected port, or a table by ifName or ifIndex.
    speed_override_bps: PositiveBps | dict[str, PositiveBps] | None = None

    @field_validator("if_alias_pattern")
    @classmethod
    def _compiles(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"not a valid regular expression: {exc}") from exc
        return pattern

    def selects_any(self) -> bool:
        """Whether at least one selector is given."""
        return bool(self.if_names or self.if_alias_pattern is not None or self.if_indexes)

    def override_for(self, port: Port) -> float | None:
        """The configured line rate of this port (by ifName, then ifIndex), if any."""
        override = self.speed_override_bps
        if isinstance(override, dict):
            return override.get(port.name, override.get(str(port.index)))
        return override


class OutletSelection(BaseModel):
    """One outlet of a PDU to read, by its number; `point`/`server` when it feeds one server
    (GB 40879 point 8, `it_input`: the outlet is then that server's input meter)."""

    model_config = ConfigDict(extra="forbid")

    index: int = Field(ge=1, le=2**31 - 1)
    point: Literal["it_input", "it_pdu"] | None = None
    server: str | None = Field(default=None, min_length=1, max_length=128)


class SnmpSettings(SourceConfigBase):
    """A switch (egress ports) or a storage system (CPU load) over SNMP v2c or v3."""

    type: Literal["snmp"]
    host: str = Field(min_length=1)
    port: int = Field(default=161, ge=1, le=65535)
    version: Literal["2c", "3"] = "2c"
    community: SecretStr | None = None
    username: str | None = Field(default=None, min_length=1)
    security_level: SecurityLevel = "authPriv"
    auth_protocol: AuthProtocol = "SHA"
    auth_password: SecretStr | None = None
    priv_protocol: PrivProtocol = "AES"
    priv_password: SecretStr | None = None
    context_name: str = ""
    retries: int = Field(default=1, ge=0, le=5)
    role: Literal["switch", "storage", "pdu"] = "switch"
    interfaces: InterfaceSelection | None = None
    # role "pdu": the PDU's MIB, and which outlets besides the inlet ("all" or a list).
    profile: ProfileName | None = None
    outlets: Literal["all"] | list[OutletSelection] = Field(default_factory=list)
    rewalk_every: int = Field(default=60, ge=1, le=1_000_000)
    max_oids_per_request: int = Field(default=40, ge=1, le=200)

    @model_validator(mode="after")
    def _consistent(self) -> SnmpSettings:
        if self.version == "2c":
            self._check_v2c()
        else:
            self._check_v3()
        self._check_pdu()
        if self.role == "switch" and (self.interfaces is None or not self.interfaces.selects_any()):
            raise ValueError(
                "a switch needs interfaces with at least one of if_names, if_alias_pattern, "
                "if_indexes"
            )
        return self

    def _check_pdu(self) -> None:
        if self.role == "pdu":
            if self.profile is None:
                raise ValueError(
                    "role pdu needs profile: one of apc_rpdu2, raritan_pdu2, servertech_sentry4"
                )
            if self.interfaces is not None:
                raise ValueError("interfaces: not used with role pdu")
            if isinstance(self.outlets, list):
                numbers = [o.index for o in self.outlets]
                twice = sorted({n for n in numbers if numbers.count(n) > 1})
                if twice:
                    raise ValueError(f"outlets: index {twice[0]} listed twice")
        elif self.profile is not None or self.outlets:
            raise ValueError("profile, outlets: only with role pdu")

    def _check_v2c(self) -> None:
        if self.community is None or not self.community.get_secret_value():
            raise ValueError("version 2c needs community")
        v3_only = [
            k
            for k in ("username", "auth_password", "priv_password")
            if getattr(self, k) is not None
        ]
        if v3_only or self.context_name:
            raise ValueError(f"{', '.join(v3_only or ['context_name'])}: only for version 3")

    def _check_v3(self) -> None:
        if self.community is not None:
            raise ValueError("community: only for version 2c (version 3 uses username)")
        if self.username is None:
            raise ValueError("version 3 needs username")
        needed = {
            "noAuthNoPriv": (),
            "authNoPriv": ("auth_password",),
            "authPriv": ("auth_password", "priv_password"),
        }[self.security_level]
        for key in ("auth_password", "priv_password"):
            secret: SecretStr | None = getattr(self, key)
            if key in needed and secret is None:
                raise ValueError(f"security_level {self.security_level} needs {key}")
            if key not in needed and secret is not None:
                raise ValueError(f"{key}: not used at security_level {self.security_level}")
            if secret is not None and len(secret.get_secret_value()) < 8:
                raise ValueError(f"{key}: at least 8 characters (RFC 3414)")
