"""`dcmeter collector token …` and `dcmeter central token …`: API bearer tokens by hand.

`create` prints the token alone on stdout, once (only its SHA-256 is stored); `list` shows
names, roles and when each was made, never a token; `revoke` deletes one by name. `create`
and `revoke` write their audit line (collectors/storage/audit.py) as JSON on stderr.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dcmeter.collectors.storage import audit
from dcmeter.collectors.storage.token_table import TokenTable
from dcmeter.collectors.web.auth import Role, create_token

HELP = {"engineer": "engineer: open and stop windows, post runs, read", "reader": "reader: read"}


def add_token_parser(cmds: Any, what: str, roles: Sequence[Role]) -> None:
    """Register `token create|list|revoke` under `cmds` (the subparsers of `what`)."""
    token = cmds.add_parser("token", help=f"the {what} API's bearer tokens (hash stored)")
    tok = token.add_subparsers(dest="token_command", required=True)
    for name, helptext in (("create", "make a token and print it once"),
                           ("list", "list tokens: name, role, created"),
                           ("revoke", "delete a token by name")):
        t = tok.add_parser(name, help=helptext)
        t.add_argument("-c", "--config", type=Path, required=True, help=f"{what} TOML file")
        if name == "create":
            if len(roles) > 1:
                t.add_argument("--role", choices=roles, required=True,
                               help="; ".join(HELP[r] for r in roles))
            t.add_argument("--name", default=None, help="a unique name (default ROLE-N)")
        if name == "revoke":
            t.add_argument("name", help="the token's name (see token list)")


def run_token_command(
    args: argparse.Namespace, open_store: Callable[[Path], TokenTable], what: str,
    roles: Sequence[Role],
) -> int:
    """Run one `dcmeter WHAT token …` command on the store `open_store(config)` opens."""
    store = open_store(args.config)
    try:
        if args.token_command == "create":
            role: Role = getattr(args, "role", None) or roles[0]
            try:
                name, token = create_token(store, role, args.name)
            except ValueError as exc:
                print(f"dcmeter: token create: {exc}", file=sys.stderr)
                return 2
            print(token)
            audit.token_created(name, role, audit.local_user(), audit.cli_logger())
            print(f"dcmeter: token {name!r} (role {role}) created; it is shown only this"
                  " once: keep it in a file (--token-file) or DCMETER_TOKEN", file=sys.stderr)
            return 0
        if args.token_command == "list":
            return _list(store.tokens())
        if not store.revoke_token(args.name):
            print(f"dcmeter: no token named {args.name!r} (see `dcmeter {what} token list`)",
                  file=sys.stderr)
            return 1
        print(f"dcmeter: token {args.name!r} revoked", file=sys.stderr)
        audit.token_revoked(args.name, audit.local_user(), audit.cli_logger())
        return 0
    finally:
        store.close()


def _list(tokens: Sequence[Any]) -> int:
    from rich.console import Console
    from rich.table import Table

    from dcmeter.collectors.evaluation.jsonl import rfc3339

    table = Table("name", "role", "created")
    for t in tokens:
        table.add_row(t.name, t.role, rfc3339(t.created_ns // 10**9))
    Console().print(table if tokens else "no tokens")
    return 0
