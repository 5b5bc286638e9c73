"""`dcmeter agent …`: run the daemon, read every source once, print the public key."""

from __future__ import annotations

import asyncio
import json
import sys
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dcmeter.agent import config, keys, pubkey
from dcmeter.agent.daemon import Agent
from dcmeter.agent.samples import Reading, SourceInfo
from dcmeter.agent.scheduler import Poller
from dcmeter.base import log


def rfc3339(ts_ns: int) -> str:
    """Format ns since the epoch as RFC 3339 UTC with microseconds and a `Z`."""
    dt = datetime.fromtimestamp(ts_ns / 1e9, UTC)
    return dt.isoformat(timespec="microseconds").replace("+00:00", "Z")


def sample_record(info: SourceInfo, r: Reading) -> dict[str, Any]:
    """One sample in the JSON-lines shape `agent once --json` prints and `evaluate` reads."""
    rec: dict[str, Any] = {
        "ts": rfc3339(r.ts_ns),
        "source": info.id,
        "metric": r.metric.name,
        "value": r.value,
        "unit": r.metric.unit,
        "kind": r.metric.kind,
        "labels": {**info.labels, **r.labels},
    }
    if r.metric.modulus is not None:
        rec["modulus"] = r.metric.modulus
    if info.accuracy is not None:
        rec["accuracy"] = info.accuracy
    return rec


def cmd_run(path: Path) -> int:
    """Run the agent daemon until SIGTERM."""
    cfg = config.load(path)
    log.setup(sys.stdout)

    async def main() -> None:
        await Agent(cfg).run()

    asyncio.run(main())
    return 0


def cmd_once(path: Path, as_json: bool) -> int:
    """Read every source once and print the samples; buffer and ship nothing."""
    cfg = config.load(path)
    log.setup(sys.stderr)

    async def main() -> tuple[list[tuple[SourceInfo, Reading]], Poller]:
        poller = Poller(cfg.build_sources(), [s.timeout_s for s in cfg.sources])
        try:
            return await poller.poll(), poller
        finally:
            await poller.close()

    tick, poller = asyncio.run(main())
    records = [sample_record(info, r) for info, r in tick]
    if as_json:
        for rec in records:
            print(json.dumps(rec, ensure_ascii=False))
    else:
        from rich.console import Console
        from rich.table import Table

        table = Table("source", "metric", "value", "unit", "kind", "time (UTC)")
        for rec in records:
            table.add_row(
                rec["source"], rec["metric"], f"{rec['value']:.6g}", rec["unit"], rec["kind"],
                rec["ts"],
            )
        Console().print(table)
    failed = [sid for sid, n in poller.failures.items() if n]
    return 1 if failed else 0


def cmd_key(path: Path) -> int:
    """Print the agent's public key (creating the key pair if there is none yet)."""
    cfg = config.load(path)
    key = keys.load_or_create(cfg.agent.state_dir)
    print(pubkey.public_text(key.public_key()))
    return 0
