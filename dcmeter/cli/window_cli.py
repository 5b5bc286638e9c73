"""`dcmeter window …`: open, stop, list and watch measurement windows through the collector's API.

The collector is `--collector URL`, else $DCMETER_COLLECTOR, else http://127.0.0.1:8470. The
bearer token is read from `--token-file FILE`, else $DCMETER_TOKEN; never from an argument,
which any user could read in `ps`. A refusal or an unreachable collector is one line on stderr
and exit status 1; a usage fault exits 2.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from dcmeter.cli.client import (
    DEFAULT_URL,
    ENV_URL,
    Client,
    CliError,
    ca_file,
    connection_options,
    positive_seconds,
    read_token,
)

if TYPE_CHECKING:
    from rich.console import Console, RenderableType

KINDS = ("infrastructure", "general", "ai")


def add_parser(sub: Any) -> None:
    """Register `window start|stop|list|status|report|reevaluate` on the `dcmeter` subparsers."""
    common = connection_options()
    win = sub.add_parser("window", help="measurement windows on a collector").add_subparsers(
        dest="window_command", required=True
    )
    start = win.add_parser("start", parents=[common], help="open a window (engineer)")
    start.add_argument("--kind", choices=KINDS, required=True, help="window kind")
    start.add_argument("--note", default=None, help="a note kept with the window")
    start.add_argument("--scope", action="append", default=None, metavar="SOURCE[,SOURCE…]",
                       help="general and ai windows: the site file's sources it covers"
                       " (repeat or comma-separate; default the whole site)")
    start.add_argument("--start", default=None, metavar="RFC3339",
                       help="start time with a UTC offset (default: now, collector's clock)")
    start.add_argument("--json", action="store_true", help="print the window as JSON")
    stop = win.add_parser("stop", parents=[common], help="close a window (engineer)")
    stop.add_argument("id", type=int, help="window id")
    stop.add_argument("--end", default=None, metavar="RFC3339",
                      help="end time with a UTC offset (default: now, collector's clock)")
    stop.add_argument("--json", action="store_true", help="print the window as JSON")
    lst = win.add_parser("list", parents=[common], help="list windows, newest first")
    lst.add_argument("--kind", choices=KINDS, default=None, help="only this kind")
    lst.add_argument("--state", choices=("open", "closed"), default=None, help="only this state")
    lst.add_argument("--since", default=None, metavar="RFC3339",
                     help="only windows not ended before this time")
    lst.add_argument("--until", default=None, metavar="RFC3339",
                     help="only windows started at or before this time")
    lst.add_argument("--json", action="store_true", help="print the list as JSON")
    status = win.add_parser("status", parents=[common],
                            help="a window's progress, coverage and indicators")
    status.add_argument("id", type=int, help="window id")
    status.add_argument("--watch", action="store_true",
                        help="refresh until the window is closed (then show its final"
                        " result and exit) or Ctrl-C")
    status.add_argument("--interval", type=positive_seconds, default=5.0, metavar="S",
                        help="seconds between refreshes with --watch (default 5)")
    status.add_argument("--json", action="store_true",
                        help="print the result as JSON (one line per refresh with --watch)")
    status.add_argument("--revision", type=int, default=None, metavar="N",
                        help="a closed window's stored revision N (default: the latest)")
    report = win.add_parser("report", parents=[common],
                            help="the window's evaluation report (docs/report.md)")
    report.add_argument("id", type=int, help="window id")
    report.add_argument("--format", choices=("html", "pdf", "json"), default="html",
                        help="html (self-contained page), pdf (printed by headless Chromium"
                        " on this machine) or json (result and plot series); default html")
    report.add_argument("--lang", choices=("en", "zh"), default="en",
                        help="labels in English or Chinese (default en)")
    report.add_argument("-o", "--output", type=Path, required=True, metavar="FILE",
                        help="where to write the report")
    report.add_argument("--revision", type=int, default=None, metavar="N",
                        help="a closed window's stored revision N (default: the latest)")
    again = win.add_parser("reevaluate", parents=[common],
                           help="compute a closed window's result again as a new revision"
                           " (engineer)")
    again.add_argument("id", type=int, help="window id")
    again.add_argument("--reason", required=True, help="why: kept with the new revision")
    again.add_argument("--json", action="store_true", help="print the new result as JSON")


def _console() -> Console:
    from dcmeter.cli.render import result_console

    return result_console()


def _print_json(data: Any, compact: bool = False) -> None:
    print(json.dumps(data, ensure_ascii=False, indent=None if compact else 2), flush=True)


def cmd_start(c: Client, args: argparse.Namespace) -> int:
    """Open a window."""
    scope = [x.strip() for arg in args.scope or () for x in arg.split(",") if x.strip()]
    body = {"kind": args.kind, "note": args.note, "start": args.start, "scope": scope or None}
    w = c.call("POST", "/windows", json={k: v for k, v in body.items() if v is not None})
    if args.json:
        _print_json(w)
    else:
        covers = f", scope {', '.join(w['scope'])}" if w.get("scope") else ""
        print(f"window {w['id']} opened: {w['kind']}, from {w['start']}{covers}")
    return 0


def cmd_stop(c: Client, args: argparse.Namespace) -> int:
    """Close a window."""
    w = c.call("POST", f"/windows/{args.id}/stop", json={"end": args.end} if args.end else None)
    if args.json:
        _print_json(w)
    else:
        print(f"window {w['id']} closed: {w['kind']}, {w['start']} → {w['end']}")
    return 0


def cmd_list(c: Client, args: argparse.Namespace) -> int:
    """List windows, newest first, filtered."""
    from rich.table import Table

    from dcmeter.cli.render import plain

    params = {k: getattr(args, k) for k in ("kind", "state", "since", "until")}
    rows = c.call("GET", "/windows", params={k: v for k, v in params.items() if v is not None})
    if args.json:
        _print_json(rows)
        return 0
    if not rows:
        print("no windows")
        return 0
    t = Table("id", "kind", "state", "start", "end", "note")
    for w in rows:
        t.add_row(plain(w["id"]), plain(w["kind"]), plain(w["state"]), plain(w["start"]),
                  plain(w["end"] or "—"), plain(w["note"] or ""))
    _console().print(t)
    return 0


def progress_line(kind: str, hours: float, state: str) -> tuple[str, float | None]:
    """Elapsed time against the length rule of `kind` (T/CECA-G 0355 A.5): text and fraction."""
    from dcmeter.collectors.evaluation.quality import MIN_HOURS, RECOMMENDED_HOURS

    minimum, recommended = MIN_HOURS.get(kind), RECOMMENDED_HOURS.get(kind)
    if minimum is None:
        return f"{hours:.2f} h (no minimum length for {kind} windows)", None
    goal = recommended or minimum
    rule = f"{minimum:g} h minimum, {goal:g} h recommended (T/CECA-G 0355 A.5)"
    if hours < minimum:
        todo = ("closed short of it: the result does not count" if state == "closed"
                else f"minimum reached in {minimum - hours:.2f} h")
    elif hours < goal:
        todo = "minimum met" + ("" if state == "closed" else
                                f"; recommended length in {goal - hours:.2f} h")
    else:
        todo = "recommended length met"
    return f"{hours:.2f} h of {rule}: {todo}", min(hours / goal, 1.0)


def status_view(result: Mapping[str, Any], width: int, colour: bool) -> RenderableType:
    """The status of one window: progress, coverage per source, the indicators as they stand."""
    from rich.console import Group
    from rich.progress_bar import ProgressBar
    from rich.table import Table
    from rich.text import Text

    from dcmeter.cli.render import plain, print_result, result_console

    # Every string from the collector may carry an agent's or a user's text: `plain` it.
    w = result["window"]
    parts: list[RenderableType] = [
        Text.from_markup(f"[bold]Window {plain(w.get('id'))}[/bold] · {plain(w.get('kind'))} · "
                         f"{plain(w.get('state'))}"
                         + (f" · {plain(w['note'])}" if w.get("note") else ""))
    ]
    if isinstance(rev := result.get("revision"), dict):  # a closed window's stored result
        parts.append(Text(
            f"Stored result, revision {rev.get('number')} ({rev.get('reason')}), computed"
            f" {rev.get('computed_at')} by {rev.get('software')}, site file sha256"
            f" {rev.get('site_sha256') or 'unknown'}"))
    text, fraction = progress_line(str(w.get("kind")), float(w.get("hours") or 0.0),
                                   str(w.get("state")))
    row = Table.grid(padding=(0, 1))
    if fraction is None:
        row.add_row("Elapsed", plain(text))
    else:
        row.add_row("Elapsed", ProgressBar(total=1.0, completed=fraction, width=24),
                    f"{fraction * 100:.0f} %", plain(text))
    parts.append(row)
    sources = result.get("quality", {}).get("sources") or []
    cov = Table("source", "metric", "samples", "coverage", "longest gap s", "median interval s",
                "interval ok", title="Coverage per source", title_justify="left")
    for q in sources:
        median = q.get("median_interval_s")
        cov.add_row(
            plain(q.get("source")), plain(q.get("metric")), plain(q.get("samples")),
            f"{float(q.get('coverage') or 0.0) * 100:.1f} %",
            f"{float(q.get('longest_gap_s') or 0.0):.1f}",
            "—" if median is None else f"{float(median):.1f}",
            "yes" if q.get("interval_ok") else "no",
        )
    parts.append(cov if sources else Text("Coverage per source: no samples yet"))
    buf = io.StringIO()
    # print_result writes to a console: render it aside and show the text in this view.
    print_result(result, console=result_console(file=buf, width=width, force_terminal=colour))
    parts.append(Text.from_ansi(buf.getvalue().rstrip("\n")))
    return Group(*parts)


def cmd_status(c: Client, args: argparse.Namespace) -> int:
    """Show one window's status, once or refreshed until Ctrl-C."""
    path = f"/windows/{args.id}"
    if not args.watch:
        result = c.call("GET", path, params=_revision(args))
        if args.json:
            _print_json(result)
        else:
            con = _console()
            con.print(status_view(result, con.width, con.is_terminal))
        return 0
    return _watch(c, path, args)


def _watch(c: Client, path: str, args: argparse.Namespace) -> int:
    """Refresh the window's status every `args.interval` s until it is closed or Ctrl-C.

    Once the collector answers with the window closed, its stored result is shown once more
    and the watch ends (exit 0). While the collector cannot be reached, the last figures stay
    on screen with a note of when they were fetched and how long ago (they are stale).
    """
    from rich.console import Group
    from rich.live import Live
    from rich.text import Text

    con = _console()
    live = Live(console=con, auto_refresh=False) if con.is_terminal and not args.json else None
    try:
        if live is not None:
            live.start()
        view: Any = None
        fetched: float | None = None  # when the figures shown were fetched, time.time() s
        while True:
            note = ""
            try:
                result = c.call("GET", path)
                fetched = time.time()
            except CliError as exc:
                if "unreachable" not in str(exc) and "in time" not in str(exc):
                    raise  # refused (401, 403, 404): watching longer cannot help
                note = f"{time.strftime('%H:%M:%S')} {exc}; retrying"
                if fetched is not None:
                    when = time.strftime("%H:%M:%S", time.localtime(fetched))
                    note += (f"; the figures shown are from {when},"
                             f" {time.time() - fetched:.0f} s ago")
                result = None
            closed = result is not None and result.get("window", {}).get("state") == "closed"
            if args.json:
                if result is not None:
                    _print_json(result, compact=True)
                else:
                    print(f"dcmeter: {note}", file=sys.stderr, flush=True)
            else:
                if result is not None:
                    view = status_view(result, con.width, con.is_terminal)
                shown = Group(*(x for x in (view, Text(note) if note else None) if x))
                if live is not None:
                    live.update(shown, refresh=True)
                else:
                    con.print(shown)
                    con.rule()
                    sys.stdout.flush()
            if closed:
                print(f"window {args.id} is closed: the result above is final", file=sys.stderr,
                      flush=True)
                return 0
            time.sleep(args.interval)
    except KeyboardInterrupt:
        return 0
    finally:
        if live is not None:
            live.stop()


def cmd_report(c: Client, args: argparse.Namespace) -> int:
    """Fetch the window's report from the collector and write it to `--output`."""
    path = f"/windows/{args.id}/report"
    if args.format == "json":
        body = json.dumps(c.call("GET", path, params={"format": "json", **_revision(args)}),
                          indent=1, ensure_ascii=False)
    else:
        body = c.text(path, params={"lang": args.lang, **_revision(args)})
    try:
        if args.format == "pdf":
            from dcmeter.collectors.reporting.report import ReportError, render_pdf

            try:
                render_pdf(body, args.output)
            except ReportError as exc:
                raise CliError(str(exc)) from None
        else:
            args.output.write_text(body, encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot write {args.output}: {exc.strerror or exc}") from None
    print(f"window {args.id}: {args.format} report written to {args.output}", file=sys.stderr)
    return 0


def _revision(args: argparse.Namespace) -> dict[str, int]:
    return {} if args.revision is None else {"revision": args.revision}


def cmd_reevaluate(c: Client, args: argparse.Namespace) -> int:
    """Re-evaluate a closed window: a new revision of its result, with the reason."""
    result = c.call("POST", f"/windows/{args.id}/reevaluate", json={"reason": args.reason})
    if args.json:
        _print_json(result)
    else:
        rev = result.get("revision") or {}
        valid = (result.get("quality") or {}).get("valid")
        sha = rev.get("site_sha256")
        print(f"window {args.id}: revision {rev.get('number')} stored"
              f" ({'valid' if valid else 'NOT valid'}), site file "
              + (f"sha256 {str(sha)[:12]}…" if sha else "unknown") + f", {rev.get('software')}")
    return 0


COMMANDS = {"start": cmd_start, "stop": cmd_stop, "list": cmd_list, "status": cmd_status,
            "report": cmd_report, "reevaluate": cmd_reevaluate}


def run(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    """Run one `dcmeter window …` command; faults print one line and set the exit status."""
    try:
        token = read_token(args.token_file, env)
        url = args.collector or env.get(ENV_URL) or DEFAULT_URL
        with Client(url, token, args.timeout, ca_file(args, env)) as client:
            return COMMANDS[args.window_command](client, args)
    except BrokenPipeError:  # `dcmeter window list --json | head`: the reader left
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except CliError as exc:
        wid = getattr(args, "id", None)
        what = f"window {wid}: " if wid is not None and f"window {wid}" not in str(exc) else ""
        print(f"dcmeter: {what}{exc}", file=sys.stderr)
        return exc.code
