"""`dcmeter source list|owner`: which agent owns each source, and the engineer's action that
moves or confirms an owner (collectors/storage/ownership.py), through the collector's API.

Connection and token as for `dcmeter window` (dcmeter/cli/client.py). Faults are one line on
stderr: exit 1 refused or unreachable, 2 usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Mapping
from typing import Any

from dcmeter.cli.client import (
    DEFAULT_URL,
    ENV_URL,
    Client,
    CliError,
    ca_file,
    connection_options,
    read_token,
)


def add_parser(sub: Any) -> None:
    """Register `source list|owner` on the `dcmeter` subparsers."""
    common = connection_options()
    src = sub.add_parser("source", help="who owns each source (one agent per source)")
    cmds = src.add_subparsers(dest="source_command", required=True)
    lst = cmds.add_parser("list", parents=[common], help="every source, its owner and history")
    lst.add_argument("--json", action="store_true", help="print the list as JSON")
    own = cmds.add_parser("owner", parents=[common],
                          help="give a source to an agent, or confirm its owner (engineer)")
    own.add_argument("source", help="source id")
    own.add_argument("--agent", required=True, help="the enrolled agent that owns it")
    own.add_argument("--reason", required=True, help="why: kept in the source's history")
    own.add_argument("--from", dest="start", default=None, metavar="RFC3339",
                     help="sample time from which the agent owns it (default: now)")
    own.add_argument("--json", action="store_true", help="print the source as JSON")


def _plain(text: object) -> str:
    """`text` without control characters (values come from agents and engineers)."""
    return "".join(ch if ch.isprintable() else "?" for ch in str(text))


def _show(entry: Mapping[str, Any]) -> str:
    state = "confirmed" if entry["confirmed"] else "NOT confirmed"
    since = f" since {entry['since']}" if entry["since"] else ""
    return _plain(f"{entry['source']}: {entry['owner']} ({entry['via']}, {state}){since}")


def cmd_list(c: Client, args: argparse.Namespace) -> int:
    """Print every source with its owner."""
    rows = c.call("GET", "/sources")
    if args.json:
        print(json.dumps(rows, indent=2, ensure_ascii=False))
        return 0
    for entry in rows:
        print(_show(entry))
        for h in entry["history"][:-1]:
            print(_plain(f"    before: {h['agent']} ({h['via']}) until {h['until']}"))
    if not rows:
        print("no sources yet")
    return 0


def cmd_owner(c: Client, args: argparse.Namespace) -> int:
    """Move or confirm a source's owner."""
    body = {"agent": args.agent, "reason": args.reason}
    if args.start is not None:
        body["from"] = args.start
    entry = c.call("POST", f"/sources/{args.source}/owner", json=body)
    print(json.dumps(entry, indent=2, ensure_ascii=False) if args.json else _show(entry))
    return 0


def run(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    """Run one `dcmeter source …` command."""
    try:
        token = read_token(args.token_file, env)
        url = args.collector or env.get(ENV_URL) or DEFAULT_URL
        with Client(url, token, args.timeout, ca_file(args, env)) as client:
            command = cmd_list if args.source_command == "list" else cmd_owner
            return command(client, args)
    except CliError as exc:
        print(f"dcmeter: {exc}", file=sys.stderr)
        return exc.code
