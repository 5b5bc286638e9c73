"""`dcmeter run`: time an AI workload as the runs of an AI window (T/CECA-G 0355 6.3.3.1).

Each repetition is launched as a child process; its start is taken right before the launch
and its end when it exits, and the run (phase, model, repetition, exit status, figures) is
posted to `POST /api/v1/windows/{id}/runs`. Figures come from the options and from the JSON
report the workload may write to $DCMETER_RUN_REPORT. A run that cannot be posted is
appended to a spool file; `dcmeter run --resend FILE` posts it later.
"""

from __future__ import annotations

import argparse
import contextlib
import math
import os
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Any

from dcmeter.cli.client import (
    DEFAULT_URL,
    ENV_TOKEN,
    ENV_URL,
    Client,
    CliError,
    ca_file,
    connection_options,
    read_token,
)
from dcmeter.cli.run_records import (
    FIGURES,
    REPORT_KEYS,
    cmd_resend,
    read_report,
    spool_append,
    spooled,
    warn,
)

ENV_REPORT, ENV_REPETITION, ENV_WINDOW = (
    "DCMETER_RUN_REPORT", "DCMETER_RUN_REPETITION", "DCMETER_RUN_WINDOW")
DEFAULT_SPOOL = Path("dcmeter-runs-pending.jsonl")


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give 1 or more")
    return value


def _amount(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value > 0):
        raise argparse.ArgumentTypeError(f"{text!r}: give a finite number above 0")
    return value


def add_parser(sub: Any) -> None:
    """Register `run` on the `dcmeter` subparsers."""
    p = sub.add_parser(
        "run", help="run an AI workload as the timed runs of an AI window",
        description="Run COMMAND --repeat times; post each run (start, end, exit status,"
        " figures) to the AI window. Figures: the options, or JSON the command writes to"
        f" ${ENV_REPORT}. The token must be an engineer's.",
        parents=[connection_options()],
    )
    p.add_argument("--window", type=_count, default=None, metavar="ID",
                   help="the AI window (default: the only open one)")
    p.add_argument("--phase", choices=("train", "infer"), help="training or inference")
    p.add_argument("--model", default=None, help="model name, e.g. resnet-50 (Annex D)")
    p.add_argument("--repeat", type=_count, default=1, metavar="N",
                   help="repetitions (default 1; the standard asks for at least 5)")
    p.add_argument("--samples", type=_amount, default=None, metavar="N",
                   help="samples (sequences for language models) per run")
    p.add_argument("--tokens", type=_amount, default=None, metavar="N", help="tokens per run")
    p.add_argument("--flops", type=_amount, default=None, metavar="F",
                   help="operations per run at --precision")
    p.add_argument("--precision", default=None, help="fp32, tf32, bf16, fp16, fp8, int8, …")
    p.add_argument("--note", default=None, help="a note kept with every run")
    p.add_argument("--report-file", type=Path, default=None, metavar="PATH",
                   help=f"where the command writes its JSON report (default: a temp file; "
                   f"given to it as ${ENV_REPORT})")
    p.add_argument("--spool", type=Path, default=DEFAULT_SPOOL, metavar="FILE",
                   help=f"runs that could not be posted go here (default {DEFAULT_SPOOL})")
    p.add_argument("--resend", type=Path, default=None, metavar="FILE",
                   help="post the runs spooled in FILE and exit (no command)")
    p.add_argument("workload", nargs=argparse.REMAINDER, metavar="-- COMMAND [ARGS…]",
                   help="the workload to run and time")


def find_window(c: Client, wid: int | None) -> int:
    """The AI window to record in: `wid` checked open and ai, else the only open ai window."""
    if wid is None:
        found = c.call("GET", "/windows", params={"kind": "ai", "state": "open"})
        if len(found) == 1:
            return int(found[0]["id"])
        if not found:
            raise CliError("no open ai window: open one with `dcmeter window start --kind ai`")
        ids = ", ".join(str(w["id"]) for w in found)
        raise CliError(f"{len(found)} open ai windows ({ids}): choose one with --window ID")
    w = next((x for x in c.call("GET", "/windows") if x.get("id") == wid), None)
    if w is None:
        raise CliError(f"no window {wid}")
    if w["kind"] != "ai" or w["state"] != "open":
        raise CliError(f"window {wid} is {w['kind']} and {w['state']}: runs need an open ai"
                       " window")
    return wid


def check_can_post(c: Client, wid: int) -> None:
    """Refuse before launching anything when the token may not post runs (401, 403)."""
    import httpx

    # An empty body passes the token check and fails validation (422): nothing is stored.
    try:
        r = c.http.post(f"/windows/{wid}/runs", json={})
    except httpx.HTTPError as exc:
        raise CliError(f"collector {c.url} unreachable: {exc}") from None
    if r.status_code in (401, 403):
        c.call("POST", f"/windows/{wid}/runs", json={})  # raises the refusal as one line


def next_repetition(c: Client, wid: int, phase: str, model: str, spool: Path) -> int:
    """One past the last repetition of (phase, model) recorded in the window or spooled."""
    key = model.strip().lower()
    runs = list(c.call("GET", f"/windows/{wid}/runs"))
    with contextlib.suppress(CliError):
        runs += [e["run"] for _, e in spooled(spool) if e is not None and e["window"] == wid]
    reps = [int(r.get("repetition", 0)) for r in runs
            if r.get("phase") == phase and str(r.get("model", "")).strip().lower() == key]
    return max(reps, default=0) + 1


class Forwarder:
    """Pass SIGINT and SIGTERM on to the running child; remember that one came."""

    def __init__(self) -> None:
        self.child: subprocess.Popen[bytes] | None = None
        self.signal: int | None = None
        self._old: dict[int, Any] = {}

    def __enter__(self) -> Forwarder:
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: object) -> None:
        for sig, old in self._old.items():
            signal.signal(sig, old)

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        self.signal = signum
        if self.child is None or self.child.poll() is not None:
            return
        if signum == signal.SIGINT and _terminal_foreground():
            return  # Ctrl-C: the terminal sent it to the child too; twice would be wrong
        self.child.send_signal(signum)


def _terminal_foreground() -> bool:
    try:
        return os.isatty(0) and os.tcgetpgrp(0) == os.getpgrp()
    except OSError:
        return False


def status_text(code: int) -> str:
    """`exit N` or `killed by SIGNAME` for a child's return code."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit {code}"


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class Tally:
    """What happened to the repetitions of one invocation."""

    recorded: list[int] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    spooled: list[int] = field(default_factory=list)
    stopped: str | None = None


def run_once(c: Client, args: argparse.Namespace, wid: int, rep: int, report: Path,
             fwd: Forwarder, tally: Tally) -> None:
    """Launch one repetition, time it, and post (or spool) its run."""
    from dcmeter.collectors.evaluation.ai_runs import parse_run

    try:
        report.unlink(missing_ok=True)  # a stale report must never be read as this run's
    except OSError as exc:
        raise CliError(f"--report-file {report}: {exc.strerror or exc}", 2) from None
    env = {k: v for k, v in os.environ.items() if k != ENV_TOKEN}  # the token is not its
    env.update({ENV_REPORT: str(report), ENV_REPETITION: str(rep), ENV_WINDOW: str(wid)})
    start = _now()
    try:
        fwd.child = subprocess.Popen(args.workload, env=env)
    except OSError as exc:
        raise CliError(f"cannot launch {args.workload[0]!r}: {exc.strerror or exc}") from None
    code = fwd.child.wait()
    end = _now()
    fwd.child = None
    found, why = read_report(report)
    if why is not None:
        warn(f"repetition {rep}: report file {report} ignored: {why}")
    # The options' figures, overridden and completed by the workload's report.
    figures = {k: getattr(args, k) for k in REPORT_KEYS
               if k != "quality" and getattr(args, k) is not None} | found
    body: dict[str, Any] = {"start": start.isoformat(), "end": end.isoformat(),
                            "phase": args.phase, "model": args.model, "repetition": rep,
                            "exit_status": code, **figures}
    if code < 0:
        body["note"] = "; ".join(x for x in (body.get("note"), status_text(code)) if x)
    what = f"repetition {rep} ({status_text(code)}, {(end - start).total_seconds():.2f} s)"
    if code != 0:
        tally.failed.append(f"{rep} ({status_text(code)})")
    try:
        run = parse_run(body).to_json()
    except ValueError as exc:
        spool_append(args.spool, wid, body, str(exc))
        tally.spooled.append(rep)
        warn(f"{what}: not a valid run ({exc}): kept in {args.spool}; fix the line and"
              f" `dcmeter run --resend {args.spool}`")
        return
    try:
        posted = c.call("POST", f"/windows/{wid}/runs", json=run)
    except CliError as exc:
        spool_append(args.spool, wid, run, str(exc))
        tally.spooled.append(rep)
        warn(f"{what}: not recorded ({exc}): kept in {args.spool}")
        return
    tally.recorded.append(rep)
    warn(f"{what}: recorded as run {posted.get('id')} in window {wid}")


def cmd_run(c: Client, args: argparse.Namespace) -> int:
    """Run the command --repeat times as runs of the AI window."""
    missing = [f"--{k}" for k in ("phase", "model") if not getattr(args, k)]
    if missing or not args.workload:
        what = ", ".join(missing + ([] if args.workload else ["-- COMMAND"]))
        raise CliError(f"run: give {what} (or --resend FILE)", 2)
    wid = find_window(c, args.window)
    check_can_post(c, wid)
    first = next_repetition(c, wid, args.phase, args.model, args.spool)
    if not any(getattr(args, k) is not None for k in FIGURES):
        warn(f"no --samples, --tokens or --flops: the command must write them to ${ENV_REPORT}")
    tally = Tally()
    with tempfile.TemporaryDirectory(prefix="dcmeter-run-") as tmp, Forwarder() as fwd:
        for rep in range(first, first + args.repeat):
            report = args.report_file or Path(tmp) / f"report-{rep}.json"
            run_once(c, args, wid, rep, report, fwd, tally)
            if fwd.signal is not None:
                tally.stopped = f"stopped by {signal.Signals(fwd.signal).name}"
                break
    task = f"window {wid}, {args.phase} {args.model}"
    parts = [f"{len(tally.recorded)} of {args.repeat} run(s) recorded"]
    if tally.failed:
        parts.append(f"failed: repetition {', '.join(tally.failed)}")
    if tally.stopped:
        parts.append(tally.stopped)
    if tally.spooled:
        parts.append(f"{len(tally.spooled)} kept in {args.spool}: send them with"
                     f" `dcmeter run --resend {args.spool}`")
    warn(f"{task}: " + "; ".join(parts))
    return 1 if tally.failed or tally.spooled or tally.stopped else 0


def run(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    """Run `dcmeter run …`; faults print one line and set the exit status."""
    command: Sequence[str] = args.workload
    args.workload = list(command[1:] if command[:1] == ["--"] else command)
    try:
        token = read_token(args.token_file, env)
        url = args.collector or env.get(ENV_URL) or DEFAULT_URL
        with Client(url, token, args.timeout, ca_file(args, env)) as client:
            if args.resend is not None:
                if args.workload:
                    raise CliError("run: --resend FILE takes no command", 2)
                return cmd_resend(client, args.resend)
            return cmd_run(client, args)
    except CliError as exc:
        warn(str(exc))
        return exc.code
