"""`dcmeter collector enroll` and `dcmeter collector verify`: agents' keys at the collector."""

from __future__ import annotations

import os
import re
import sys
from pathlib import Path

from dcmeter.agent import pubkey
from dcmeter.base.configfile import ConfigError
from dcmeter.collectors.storage import audit

AGENT_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")


def cmd_enroll(
    config_path: Path, agent: str, key_file: Path | None, key_text: str | None, replace: bool
) -> int:
    """Write the agent's public key to `keys_dir/<agent>.pub`; print its fingerprint."""
    from dcmeter.collectors import config

    cfg = config.load(config_path)
    kd = cfg.collector.keys_dir
    if kd is None:
        raise ConfigError(
            f"{config_path}: key collector.keys_dir: (missing): set keys_dir to the folder of"
            " enrolled agents' <agent-id>.pub files to enrol with this command"
        )
    if not AGENT_ID.match(agent):
        raise ConfigError(
            f"--agent: bad value {agent!r}: letters, digits, _ . : - (at most 128, not"
            " starting with a punctuation mark)"
        )
    if key_file is not None:
        try:
            key_text = key_file.read_text()
        except OSError as exc:
            raise ConfigError(f"--key-file {key_file}: {exc.strerror or exc}") from None
    where = f"--key-file {key_file}" if key_file is not None else "--key"
    try:
        key = pubkey.parse_public(key_text or "")
    except ValueError as exc:
        raise ConfigError(
            f"{where}: {exc}: give the line `dcmeter agent key` prints (ed25519:BASE64)"
        ) from None
    text = pubkey.public_text(key)
    target = kd / f"{agent}.pub"
    old_print: str | None = None
    if target.exists():
        try:
            old = pubkey.parse_public(target.read_text())
        except (OSError, ValueError):
            old = None
        old_print = pubkey.fingerprint(old) if old is not None else "unreadable"
        if old is not None and pubkey.public_text(old) == text:
            print(f"agent {agent}: already enrolled with {pubkey.fingerprint(key)} ({target})")
            return 0
        if not replace:
            shown = pubkey.fingerprint(old) if old is not None else "an unreadable key"
            print(
                f"dcmeter: collector enroll: agent {agent} is enrolled with {shown} in"
                f" {target}; give --replace to enrol {pubkey.fingerprint(key)} instead",
                file=sys.stderr,
            )
            return 1
    kd.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp")
    tmp.write_text(text + "\n")
    os.replace(tmp, target)
    print(f"agent {agent}: enrolled {pubkey.fingerprint(key)} ({target}); a running collector"
          " accepts it within a few seconds")
    audit.agent_enrolled(agent, pubkey.fingerprint(key), None, audit.local_user(),
                         audit.cli_logger(), via="enroll_command", file=str(target),
                         replaced=old_print)
    return 0


def cmd_verify(config_path: Path, agent: str | None) -> int:
    """Re-verify every stored batch against the key in force at its seq and every link
    between consecutive stored seqs; list missing seqs; 1 on any failure or broken link."""
    from dcmeter.collectors import config
    from dcmeter.collectors.intake.agent_keys import verify_stored
    from dcmeter.collectors.storage.store import Store

    cfg = config.load(config_path)
    if isinstance(cfg.collector.store, Path) and not cfg.collector.store.exists():
        raise ConfigError(f"{config_path}: key collector.store: {cfg.collector.store}: no store")
    store = Store(cfg.collector.store)
    try:
        audit = verify_stored(store, agent, config.keyring(cfg, config_path))
    finally:
        store.close()
    for line in audit.faults:
        print(f"FAILED {line}")
    for line in audit.gaps:
        print(f"GAP {line}")
    scope = f"agent {agent}" if agent else "all agents"
    print(f"{scope}: {audit.verified} batches verified, {audit.failed} failed;"
          f" {audit.links} links verified, {audit.breaks} broken;"
          f" {len(audit.gaps)} gaps (missing seqs, listed, not failures)")
    return 1 if audit.failed or audit.breaks else 0
