"""The agent's TOML configuration, validated when loaded (see config/agent.toml)."""

from __future__ import annotations

import socket
import ssl
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from dcmeter.agent.sources import (
    REGISTRY,
    Source,
    SourceConfig,
    config_class,
    import_vendor_modules,
    vendor_types,
)
from dcmeter.base.configfile import ConfigError, Faults, read_toml, resolve_files
from dcmeter.base.tls import client_context


class AgentSection(BaseModel):
    """`[agent]`: identity, polling interval, state directory, buffer bound."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(
        default_factory=socket.gethostname, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$"
    )
    interval_s: float = Field(default=60.0, ge=1, le=900)
    state_dir: Path = Path("/var/lib/dcmeter")
    buffer_max_mb: float = Field(default=256.0, gt=0)
    batch_max_samples: int = Field(default=50_000, ge=1, le=1_000_000)


class CollectorSection(BaseModel):
    """`[collector]`: where batches go and how hard to retry."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(pattern=r"^https?://[^\s/]+")
    timeout_s: float = Field(default=10.0, gt=0, le=300)
    backoff_initial_s: float = Field(default=1.0, gt=0, le=60)
    backoff_max_s: float = Field(default=300.0, gt=0, le=3600)
    # Idle kept-alive connections are closed after this long, s: below the collector's
    # keep_alive_s (default 5), so the agent never reuses one the collector is closing.
    keep_alive_s: float = Field(default=4.0, ge=0, le=300)
    # TLS (docs/tls.md): the CA the collector's certificate must verify against (default:
    # the system store) and, for mutual TLS, this agent's client certificate and key.
    ca_file: Path | None = None
    client_cert_file: Path | None = None
    client_key_file: Path | None = None

    def tls_context(self) -> ssl.SSLContext | None:
        """The client TLS context for an https URL with any TLS key set, else None."""
        if not self.url.startswith("https://") or not (
            self.ca_file or self.client_cert_file or self.client_key_file
        ):
            return None
        return client_context(self.ca_file, self.client_cert_file, self.client_key_file)


class _File(BaseModel):
    model_config = ConfigDict(extra="forbid")

    agent: AgentSection = Field(default_factory=AgentSection)
    collector: CollectorSection | None = None
    sources: list[dict[str, Any]] = Field(default_factory=list)


class AgentConfig:
    """A validated agent configuration: its sections and one config model per source."""

    def __init__(
        self, path: Path, agent: AgentSection, collector: CollectorSection | None,
        sources: list[SourceConfig],
    ) -> None:
        self.path = path
        self.agent = agent
        self.collector = collector
        self.sources = sources

    def build_sources(self) -> list[Source]:
        """Instantiate one source per configured target, its vendor library imported now."""
        import_vendor_modules(vendor_types(self.sources))
        return [s.build() for s in self.sources]


def load(path: Path) -> AgentConfig:
    """Read and validate an agent config file; raise ConfigError naming every fault of it.

    `[agent]`, `[collector]` and each `[[sources]]` entry are checked on their own, so a
    fault in one never hides the faults of the others: one run lists them all.
    """
    raw = read_toml(path)
    faults = Faults()
    base = faults.model(path, _File, raw)
    entries = raw.get("sources")
    sources = _load_sources(path, entries if isinstance(entries, list) else [], faults)
    if base is not None and base.collector is not None:
        try:
            _check_tls(path, base.collector)
        except ConfigError as exc:
            faults.add(exc)
    faults.raise_any()
    assert base is not None  # no faults: the file validated
    return AgentConfig(path, base.agent, base.collector, sources)


def _load_sources(path: Path, entries: list[Any], faults: Faults) -> list[SourceConfig]:
    """Validate every `[[sources]]` entry, keeping the faults of each (not just the first)."""
    sources: list[SourceConfig] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        if not isinstance(entry, dict):
            continue  # reported by _File: sources must be tables
        kind = entry.get("type")
        if kind not in REGISTRY:
            valid = ", ".join(sorted(REGISTRY))
            faults.add(ConfigError(
                f"{path}: key sources[{i}].type: bad value {kind!r}: must be one of {valid}"
            ))
            continue
        cfg: Any = faults.model(path, config_class(kind), entry, ("sources", i))
        if cfg is None:
            continue
        if cfg.id in seen:
            faults.add(ConfigError(
                f"{path}: key sources[{i}].id: bad value {cfg.id!r}: source ids must be unique"
            ))
        seen.add(cfg.id)
        sources.append(cfg)
    return sources


def _check_tls(path: Path, c: CollectorSection) -> None:
    """Resolve the TLS files from the config's folder and check they load."""
    resolve_files(path, c, ("ca_file", "client_cert_file", "client_key_file"), "collector")
    if (c.client_cert_file is None) != (c.client_key_file is None):
        raise ConfigError(
            f"{path}: key collector.client_cert_file: mutual TLS needs both client_cert_file"
            " and client_key_file"
        )
    try:
        c.tls_context()
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(
            f"{path}: key collector.ca_file/client_cert_file/client_key_file: not usable"
            f" PEM certificates and key: {exc}"
        ) from None
