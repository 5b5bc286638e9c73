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

# Only what `dcmeter --help` needs is imported here; the pull and the server when run.
if TYPE_CHECKING:
    import uvicorn

    from collectors.central_pull import Puller
    from collectors.central_store import CentralStore


def add_parser(sub: Any) -> None:
    """Register `central pull` and `central token create|list|revoke`."""
    central = sub.add_parser("central", help="pull results from several site collectors")
    cmds = central.add_subparsers(dest="central_command", required=True)
    pull = cmds.add_parser("pull", help="pull sites on a schedule and serve the central API")
    pull.add_argument("-c", "--config", type=Path, required=True, help="central TOML file")
    pull.add_argument("--once", action="store_true",
                      help="pull every site once, print a line per site, exit 1 if any is down")
    token = cmds.add_parser("token", help="the central API's bearer tokens (hash stored)")
    tok = token.add_subparsers(dest="token_command", required=True)
    for name, helptext in (("create", "make a reader token and print it once"),
                           ("list", "list tokens: name, role, created"),
                           ("revoke", "delete a token by name")):
        t = tok.add_parser(name, help=helptext)
        t.add_argument("-c", "--config", type=Path, required=True, help="central TOML file")
        if name == "create":
            t.add_argument("--name", default=None, help="a unique name (default reader-N)")
        if name == "revoke":
            t.add_argument("name", help="the token's name (see token list)")


def run(args: argparse.Namespace) -> int:
    """Dispatch one `dcmeter central …` command (ConfigError is reported by the caller)."""
    if args.central_command == "pull":
        return cmd_pull(args.config, args.once)
    if args.token_command == "create":
        return cmd_token_create(args.config, args.name)
    if args.token_command == "list":
        return cmd_token_list(args.config)
    return cmd_token_revoke(args.config, args.name)


def cmd_pull(path: Path, once: bool) -> int:
    """Pull once and report, or pull on the schedule and serve until SIGTERM/SIGINT."""
    import structlog
    import uvicorn

    from collectors import central_config
    from collectors.central_api import create_central_app
    from collectors.central_pull import Puller, pull_once
    from collectors.central_store import CentralStore
    from dcmeter import log

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
            "central starting", host=c.host, port=c.port, store=str(c.store),
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


# `dcmeter central token …`: the same shape as `dcmeter collector token …`, role reader only.


def _open_store(path: Path) -> CentralStore:
    from collectors import central_config
    from collectors.central_store import CentralStore

    return CentralStore(central_config.load(path).central.store)


def cmd_token_create(path: Path, name: str | None) -> int:
    """Create a reader token; print it alone on stdout (once), a note on stderr."""
    from collectors.auth import create_token

    store = _open_store(path)
    try:
        name, token = create_token(store, "reader", name)
    except ValueError as exc:
        print(f"dcmeter: token create: {exc}", file=sys.stderr)
        return 2
    finally:
        store.close()
    print(token)
    print(f"dcmeter: central token {name!r} (role reader) created; it is shown only this once",
          file=sys.stderr)
    return 0


def cmd_token_list(path: Path) -> int:
    """List tokens by name, role and creation time; never the token."""
    from collectors.evaluation.jsonl import rfc3339

    store = _open_store(path)
    try:
        tokens = store.tokens()
    finally:
        store.close()
    for t in tokens:
        print(f"{t.name}\t{t.role}\t{rfc3339(t.created_ns // 10**9)}")
    if not tokens:
        print("no tokens", file=sys.stderr)
    return 0


def cmd_token_revoke(path: Path, name: str) -> int:
    """Delete a token by name; exit 1 if there is none."""
    store = _open_store(path)
    try:
        gone = store.revoke_token(name)
    finally:
        store.close()
    if not gone:
        print(f"dcmeter: no token named {name!r} (see `dcmeter central token list`)",
              file=sys.stderr)
        return 1
    print(f"dcmeter: token {name!r} revoked", file=sys.stderr)
    return 0
