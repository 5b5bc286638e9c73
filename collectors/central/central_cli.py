"""`dcmeter central …`: pull results from several site collectors and serve them (docs/central.md).

`central pull -c FILE` pulls every site on a schedule and serves the central's API until
SIGTERM or SIGINT; `--once` pulls once, prints a line per site and exits 0 when every site
answered. `central token create|list|revoke` manage the central's own reader tokens.
"""

from __future__ import annotations

import argparse
import asyncio
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcmeter.collectors.commands.token_cli import add_token_parser, run_token_command

# Only what `dcmeter --help` needs is imported here; the pull and the server when run.
if TYPE_CHECKING:
    import uvicorn

    from dcmeter.collectors.central.central_pull import Puller
    from dcmeter.collectors.central.central_store import CentralStore
def add_parser(sub: Any) -> None:
    """Register `central pull` and `central token create|list|revoke`."""
    central = sub.add_parser("central", help="pull results from several site collectors")
    cmds = central.add_subparsers(dest="central_command", required=True)
    pull = cmds.add_parser("pull", help="pull sites on a schedule and serve the central API")
    pull.add_argument("-c", "--config", type=Path, required=True, help="central TOML file")
    pull.add_argument("--once", action="store_true",
                      help="pull every site once, print a line per site, exit 1 if any is down")
    add_token_parser(cmds, "central", ("reader",))


def run(args: argparse.Namespace) -> int:
    """Dispatch one `dcmeter central …` command (ConfigError is reported by the caller)."""
    if args.central_command == "pull":
        return cmd_pull(args.config, args.once)
    return run_token_command(args, _open_store, "central", ("reader",))


def cmd_pull(path: Path, once: bool) -> int:
    """Pull once and report, or pull on the schedule and serve until SIGTERM/SIGINT."""
    import structlog
    import uvicorn

    from dcmeter.base import log
    from dcmeter.collectors.central import central_config
    from dcmeter.collectors.central.central_api import create_central_app
    from dcmeter.collectors.central.central_pull import Puller, pull_once
    from dcmeter.collectors.central.central_store import CentralStore
    from dcmeter.collectors.storage.db import masked

    cfg = central_config.load(path)
    targets = central_config.targets(cfg, path)
    c = cfg.central
    log.setup(sys.stderr if once else sys.stdout)
    store = CentralStore(c.store)
    try:
        if once:
            outcomes = asyncio.run(pull_once(store, targets, c.timeout_s))
            for o in outcomes:
                print(o.line())
            return 0 if all(o.ok for o in outcomes) else 1
        app = create_central_app(store, [(t.name, t.url) for t in targets], auth=c.auth)
        server = uvicorn.Server(
            uvicorn.Config(app, host=c.host, port=c.port, log_config=None, access_log=False)
        )
        structlog.get_logger("dcmeter.central").info(
            "central starting", host=c.host, port=c.port, store=masked(c.store),
            sites=[t.name for t in targets], interval_s=c.interval_s, auth=c.auth,
        )
        # uvicorn handles SIGTERM/SIGINT while it serves, then raises the signal again for
        # the handler found before it: a no-op here, so the stop is graceful and exits 0.
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: None)
        asyncio.run(_serve(server, Puller(store, targets, c.timeout_s), c.interval_s))
        structlog.get_logger("dcmeter.central").info("central stopped")
        return 0
    finally:
        store.close()


async def _serve(server: uvicorn.Server, puller: Puller, interval_s: float) -> None:
    """Serve the API and pull on the schedule; the server's signal handling stops both."""
    stop = asyncio.Event()
    pulling = asyncio.create_task(puller.run(interval_s, stop))
    try:
        await server.serve()
    finally:
        stop.set()
        await pulling
        await puller.aclose()


# `dcmeter central token …` (collectors/commands/token_cli.py): the central's own reader tokens.


def _open_store(path: Path) -> CentralStore:
    from dcmeter.collectors.central import central_config
    from dcmeter.collectors.central.central_store import CentralStore

    return CentralStore(central_config.load(path).central.store)
