"""The central's TOML configuration (see config/central.toml and docs/central.md)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dcmeter.base.configfile import ConfigError, load_model
from dcmeter.collectors.config import is_loopback
from dcmeter.collectors.storage.db import is_url, masked

SITE_NAME = r"^[A-Za-z0-9_.-]{1,64}$"


class CentralSection(BaseModel):
    """`[central]`: its store, where it listens, how often and how long it waits for a site."""

    model_config = ConfigDict(extra="forbid")

    # A SQLite file, or a `postgresql://user[:password]@host:port/db` URL: the collector's
    # store key (collectors/config.py), opened through the same layer (collectors/storage/db.py).
    store: Path | str = Path("/var/lib/dcmeter/central.sqlite")
    host: str = "127.0.0.1"
    port: int = Field(default=8471, ge=0, le=65535)
    interval_s: float = Field(default=300.0, gt=0, le=86400)
    timeout_s: float = Field(default=10.0, gt=0, le=600)
    # Bearer tokens on the central's API; off only on loopback, as on a site collector.
    auth: bool = True

    @field_validator("store", mode="before")
    @classmethod
    def _path_or_url(cls, v: object) -> object:
        """A URL stays text (checked by `load`, which can mask it); else a SQLite path."""
        return Path(v) if isinstance(v, str) and "://" not in v else v

    @model_validator(mode="after")
    def _auth_off_only_on_loopback(self) -> CentralSection:
        if not self.auth and not is_loopback(self.host):
            raise ValueError(
                f"auth = false is allowed only when host is a loopback address (127.0.0.1,"
                f" ::1, localhost); host is {self.host!r}: keep auth = true and create tokens"
                " with `dcmeter central token create`"
            )
        return self


class SiteEntry(BaseModel):
    """`[[sites]]`: one site collector to pull from, with a reader token of its own."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=SITE_NAME)
    url: str = Field(pattern=r"^https?://[^\s/]+(/[^\s]*)?$")
    token_file: Path


class CentralConfig(BaseModel):
    """The whole central file."""

    model_config = ConfigDict(extra="forbid")

    central: CentralSection = Field(default_factory=CentralSection)
    sites: list[SiteEntry] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique_names(self) -> CentralConfig:
        seen: set[str] = set()
        for s in self.sites:
            if s.name in seen:
                raise ValueError(f"site name {s.name!r} appears twice; names must be unique")
            seen.add(s.name)
        return self


@dataclass(frozen=True, slots=True)
class SiteTarget:
    """A site ready to pull: its name, base URL and the token read from its token file."""

    name: str
    url: str
    token: str
    token_file: Path

    def __repr__(self) -> str:  # the token never reaches a log line or a traceback
        return f"SiteTarget(name={self.name!r}, url={self.url!r}, token_file={self.token_file})"


def load(path: Path) -> CentralConfig:
    """Read and validate a central config; relative paths are taken from the file's folder."""
    cfg = load_model(path, CentralConfig)
    base = path.parent
    c = cfg.central
    if isinstance(c.store, Path):
        c.store = base / c.store
    elif not is_url(c.store):
        raise ConfigError(
            f"{path}: key central.store: bad value {masked(c.store)!r}: not a supported URL:"
            " give a SQLite file path or a postgresql://user@host:port/db URL"
        )
    for s in cfg.sites:
        s.token_file = base / s.token_file
        s.url = s.url.rstrip("/")
    return cfg


def read_token(path: Path, where: str) -> str:
    """The token in `path` (its first line, blanks stripped); ConfigError naming `where`."""
    try:
        lines = path.read_text().splitlines()
    except OSError as exc:
        raise ConfigError(f"{where} {str(path)!r}: {exc.strerror or exc}") from None
    token = lines[0].strip() if lines else ""
    if not token:
        raise ConfigError(f"{where} {str(path)!r}: the file is empty; put a reader token of"
                          " that site's collector in it (`dcmeter collector token create"
                          " --role reader`)")
    if not (token.isascii() and token.isprintable() and " " not in token):
        raise ConfigError(f"{where} {str(path)!r}: not a token (one line of printable ASCII,"
                          " no spaces)")
    return token


def targets(cfg: CentralConfig, path: Path) -> list[SiteTarget]:
    """Read every site's token file (at start); a missing or empty one is a ConfigError."""
    out = []
    for i, s in enumerate(cfg.sites):
        token = read_token(s.token_file, f"{path}: key sites[{i}].token_file")
        out.append(SiteTarget(s.name, s.url, token, s.token_file))
    return out
