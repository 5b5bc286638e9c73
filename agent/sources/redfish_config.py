"""Settings of a `redfish` target: the service's URL, the chassis, credentials and TLS."""

from __future__ import annotations

from pathlib import Path
from typing import Literal
from urllib.parse import urlsplit

from pydantic import Field, SecretStr, field_validator, model_validator

from dcmeter.agent.sources.base import SourceConfigBase
from dcmeter.base.configfile import read_secret_file


class RedfishSettings(SourceConfigBase):
    """One Redfish service (a BMC) and the chassis whose power it reports."""

    type: Literal["redfish"]
    # scheme://host[:port] of the service; the service root is {url}/redfish/v1.
    url: str = Field(min_length=1)
    # The Chassis member's Id (`Chassis/{id}`); None: the first member offering power.
    chassis: str | None = Field(default=None, min_length=1, max_length=255)
    # "session": POST SessionService/Sessions, X-Auth-Token kept (DSP0266 §13.3.4);
    # "basic": HTTP basic authentication on every request.
    auth: Literal["session", "basic"] = "session"
    username: str = Field(min_length=1, max_length=255)
    password: SecretStr | None = None
    password_file: Path | None = None
    # "auto": EnvironmentMetrics where the chassis has it, else Power; or force one.
    resource: Literal["auto", "environment_metrics", "power"] = "auto"
    ca_file: Path | None = None  # PEM CA bundle of the site; None: the system store
    verify: bool = True  # false only when explicitly set (logged once per source)

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("url must be http(s)://host[:port], e.g. https://bmc1.example")
        if parts.path.strip("/") or parts.query or parts.fragment:
            raise ValueError("url is the service's scheme://host[:port] only, without a path")
        return url.rstrip("/")

    @model_validator(mode="after")
    def _one_password(self) -> RedfishSettings:
        given = [k for k in ("password", "password_file") if getattr(self, k) is not None]
        if len(given) != 1:
            raise ValueError("give exactly one of password, password_file")
        if self.ca_file is not None and not self.verify:
            raise ValueError("ca_file is not used with verify = false: remove one of them")
        return self

    def read_password(self) -> str:
        """The password, from `password` or `password_file` (one trailing newline stripped);
        raise ConfigError naming the file when it is unusable."""
        if self.password is not None:
            return self.password.get_secret_value()
        assert self.password_file is not None
        return read_secret_file(self.password_file,
                                f"source {self.id}: password_file {self.password_file}")
