"""The collector's TOML configuration (see config/collector.toml)."""

from __future__ import annotations

import ipaddress
import ssl
from pathlib import Path
from typing import Annotated, Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from dcmeter.agent.pubkey import parse_public
from dcmeter.base.configfile import ConfigError, Faults, load_model, resolve_files
from dcmeter.collectors.storage.db import is_url, masked


class TlsSection(BaseModel):
    """`[collector.tls]`: serve HTTPS; with client_ca_file, require client certificates."""

    model_config = ConfigDict(extra="forbid")

    cert_file: Path
    key_file: Path
    # Mutual TLS: clients must present a certificate signed by this CA.
    client_ca_file: Path | None = None


class CollectorSection(BaseModel):
    """`[collector]`: where it listens, where it stores, which site file it evaluates with."""

    model_config = ConfigDict(extra="forbid")

    host: str = "127.0.0.1"
    port: int = Field(default=8470, ge=0, le=65535)
    # A SQLite file, or a `postgresql://user[:password]@host:port/db` URL
    # (collectors/storage/db.py).
    store: Path | str = Path("/var/lib/dcmeter/collector.sqlite")
    site: Path = Path("/etc/dcmeter/site.toml")
    keys_dir: Path | None = None
    max_batch_mb: float = Field(default=16.0, gt=0, le=1024)
    # Caps on what one agent can make the collector keep (collectors/storage/series_table.py).
    max_series_per_agent: int = Field(default=50_000, ge=1, le=10_000_000)
    max_series_per_source: int = Field(default=4_096, ge=1, le=1_000_000)
    # Bearer tokens on the windows API (collectors/web/auth.py); off only on loopback.
    auth: bool = True
    tls: TlsSection | None = None
    # Limits that keep a hostile client from starving the collector (docs/security.md).
    # Connections at once; beyond it requests are answered 503 (uvicorn limit_concurrency).
    limit_concurrency: int = Field(default=4096, ge=1, le=60000)
    # Connections the kernel queues before they are accepted (listen backlog).
    backlog: int = Field(default=2048, ge=1, le=65535)
    # An idle keep-alive connection is closed after this long, s.
    keep_alive_s: int = Field(default=5, ge=1, le=3600)
    # A request's head must arrive within this long of the connection (or the previous
    # response), s; else 408 and the connection is closed.
    header_timeout_s: float = Field(default=10.0, gt=0, le=3600)
    # Largest request head (request line and headers), KiB.
    max_header_kb: int = Field(default=16, ge=1, le=1024)
    # A request's body must arrive within this long of its head, s; else 408.
    body_timeout_s: float = Field(default=30.0, gt=0, le=3600)
    # Largest body of every route but /api/v1/batches (max_batch_mb), KiB; else 413.
    max_body_kb: int = Field(default=256, ge=1, le=1024 * 1024)
    # A window result, report, or /metrics scrape taking longer is stopped and answered 503, s.
    read_timeout_s: float = Field(default=60.0, gt=0, le=3600)
    # Measurement windows open at once on this site; opening one more is refused with 409.
    max_open_windows: int = Field(default=32, ge=1, le=100000)

    @field_validator("store", mode="before")
    @classmethod
    def _path_or_url(cls, v: object) -> object:
        """A URL stays text (checked by `load`, which can mask it); else a SQLite path."""
        return Path(v) if isinstance(v, str) and "://" not in v else v

    @model_validator(mode="after")
    def _auth_off_only_on_loopback(self) -> CollectorSection:
        if not self.auth and not is_loopback(self.host):
            raise ValueError(
                f"auth = false is allowed only when host is a loopback address (127.0.0.1,"
                f" ::1, localhost); host is {self.host!r}: keep auth = true and create tokens"
                " with `dcmeter collector token create`"
            )
        return self


def is_loopback(host: str) -> bool:
    """Whether `host` (an address or "localhost") can only be reached from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


SourceId = Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")]


class EnrolledAgent(BaseModel):
    """`[[agents]]`: an agent allowed to send batches, by id and public key."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    public_key: str
    # The only source ids this agent may report, bound to it at start (collectors/
    # ownership.py); absent: any source no other agent owns, bound on first delivery.
    sources: list[SourceId] | None = None

    @field_validator("public_key")
    @classmethod
    def _parses(cls, v: str) -> str:
        parse_public(v)  # raises ValueError with the reason
        return v


class CollectorConfig(BaseModel):
    """The whole collector file."""

    model_config = ConfigDict(extra="forbid")

    collector: CollectorSection = Field(default_factory=CollectorSection)
    agents: list[EnrolledAgent] = Field(default_factory=list)


def load(path: Path) -> CollectorConfig:
    """Read and validate a collector config; relative paths are taken from the file's folder.

    Every fault of the file is reported at once (ConfigError, one line each).
    """
    cfg = load_model(path, CollectorConfig)
    c = cfg.collector
    base = path.parent
    faults = Faults()
    if isinstance(c.store, Path):
        c.store = base / c.store
    elif not is_url(c.store):
        faults.add(ConfigError(
            f"{path}: key collector.store: bad value {masked(c.store)!r}: not a supported URL:"
            " give a SQLite file path or a postgresql://user@host:port/db URL"
        ))
    c.site = base / c.site
    if c.keys_dir is not None:
        c.keys_dir = base / c.keys_dir
    if c.tls is not None:
        try:
            _check_tls(path, c.tls)
        except ConfigError as exc:
            faults.add(exc)
    faults.raise_any()
    return cfg


def _check_tls(path: Path, tls: TlsSection) -> None:
    """Resolve the TLS files from the config's folder; check they exist and load together."""
    resolve_files(path, tls, ("cert_file", "key_file", "client_ca_file"), "collector.tls")
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    try:
        ctx.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{path}: key collector.tls.cert_file: bad value {str(tls.cert_file)!r}: not a PEM"
            f" certificate matching key_file {str(tls.key_file)!r} ({exc})"
        ) from None
    if tls.client_ca_file is not None:
        try:
            ctx.load_verify_locations(tls.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(
                f"{path}: key collector.tls.client_ca_file: bad value"
                f" {str(tls.client_ca_file)!r}: not PEM CA certificates ({exc})"
            ) from None


def uvicorn_tls(tls: TlsSection | None) -> dict[str, Any]:
    """The uvicorn.Config arguments serving `tls` (none for plain HTTP)."""
    if tls is None:
        return {}
    args: dict[str, Any] = {"ssl_certfile": str(tls.cert_file), "ssl_keyfile": str(tls.key_file)}
    if tls.client_ca_file is not None:
        args |= {"ssl_ca_certs": str(tls.client_ca_file), "ssl_cert_reqs": ssl.CERT_REQUIRED}
    return args


def source_bindings(cfg: CollectorConfig) -> dict[str, list[str]]:
    """Per agent that lists them in `[[agents]]`, the only sources it may report."""
    return {a.id: list(a.sources) for a in cfg.agents if a.sources is not None}


def keyring(cfg: CollectorConfig, path: Path) -> dict[str, Ed25519PublicKey]:
    """Enrolled agents: the `[[agents]]` table plus `<agent-id>.pub` files in `keys_dir`."""
    keys = {a.id: parse_public(a.public_key) for a in cfg.agents}
    kd = cfg.collector.keys_dir
    if kd is not None and kd.is_dir():
        for f in sorted(kd.glob("*.pub")):
            try:
                keys[f.stem] = parse_public(f.read_text())
            except ValueError as exc:
                raise ConfigError(f"{f}: bad agent public key: {exc}") from None
    return keys
