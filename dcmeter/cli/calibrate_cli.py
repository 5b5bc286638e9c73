"""`dcmeter calibrate …`: calibrations on the collector from the command line (issue 18).

`start PLAN` opens one from a plan file (collectors/evaluation/calibration_plan.py), `run
PLAN` also drives every point × repetition (dcmeter/cli/calibrate_drivers.py), posts each
reading, waits for the agents' samples of the last dwell to arrive, closes it and prints the
points table; `reading`, `close`, `show`, `certificate` and `list` act on one by id.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from dcmeter.cli.calibrate_drivers import Driver, DriverError, Measured, PostRun
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
from dcmeter.collectors.evaluation.calibration_plan import Plan

DATA_WAIT_S = 60.0  # default: how long `run` waits for the last dwell's samples


def warn(text: str) -> None:
    """One line on stderr, prefixed as every dcmeter client line is."""
    print(f"dcmeter: {text}", file=sys.stderr)


def load_plan(path: Path) -> Plan:
    """The plan file, validated; a fault raises ConfigError naming the file, key and value
    (one line each, exit 2 through dcmeter.cli.main)."""
    from dcmeter.base.configfile import load_model

    return load_model(path, Plan)


def driver_for(plan: Plan, post_run: PostRun | None) -> Driver:
    """The driver of `plan`: the operator's or a command (calibrate_load), or a reference
    tool's (calibrate_tools: iperf3, fio, workload)."""
    if plan.driver.kind in ("none", "command"):
        from dcmeter.cli.calibrate_load import load_driver

        return load_driver(plan)
    from dcmeter.cli.calibrate_tools import tool_driver

    return tool_driver(plan, post_run)


def _rfc3339(ts: float) -> str:
    from dcmeter.collectors.evaluation.jsonl import rfc3339

    return rfc3339(ts)


def reading_body(point: str, repetition: int, m: Measured) -> dict[str, Any]:
    """The body of POST …/readings for one measured repetition."""
    return {"point": point, "repetition": repetition, "start": _rfc3339(m.start),
            "end": _rfc3339(m.end), "reference": m.reference, "indicated": m.indicated,
            "run": m.run, "detail": m.detail}


def _fmt(v: Any, spec: str = ".6g") -> str:
    return "—" if v is None else format(v, spec)


def points_table(record: Mapping[str, Any]) -> str:
    """The points of a record as a text table: label, means, error, U (k=2), statement."""
    unit = (record.get("quantity") or {}).get("unit") or ""
    head = ["point", f"reference ({unit})", f"indicated ({unit})", f"error ({unit})",
            "relative error", "U (k=2)", "statement"]
    rows = [head]
    for p in record.get("points", []):
        rel = p.get("relative_error")
        rows.append([str(p.get("label")), _fmt(p.get("reference_mean")),
                     _fmt(p.get("indicated_mean")), _fmt(p.get("error")),
                     "—" if rel is None else f"{rel * 100:.3g} %", _fmt(p.get("expanded_u")),
                     str((p.get("statement") or {}).get("result"))])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
             for r in rows]
    statement = record.get("statement") or {}
    lines.append(f"calibration {record.get('id')}: {statement.get('result')}"
                 f" ({statement.get('rule')} rule)")
    lines += [f"issue: {i}" for i in record.get("issues", [])]
    return "\n".join(lines)


def _waiting(record: Mapping[str, Any]) -> bool:
    """Whether some stored repetition still lacks a side (samples not yet arrived)."""
    return any(not r.get("valid") for p in record.get("points", [])
               for r in p.get("repetitions", []))


def wait_for_data(c: Client, cid: int, wait_s: float,
                  sleep: Callable[[float], None] = time.sleep) -> None:
    """Poll the open record until every repetition has both sides, or `wait_s` has passed:
    an agent ships its last dwell's samples on its next interval."""
    deadline = time.monotonic() + wait_s
    while _waiting(c.call("GET", f"/calibrations/{cid}")):
        if time.monotonic() >= deadline:
            warn(f"calibration {cid}: some repetitions still lack a side after {wait_s:g} s;"
                 " closing all the same (see its issues)")
            return
        sleep(min(1.0, wait_s / 10))


def write_outputs(c: Client, args: argparse.Namespace, cid: int, record: Any) -> None:
    """--json FILE and --certificate FILE of `run`."""
    if getattr(args, "json", None):
        args.json.write_text(json.dumps(record, indent=2, ensure_ascii=False) + "\n")
    if getattr(args, "certificate", None):
        save_certificate(c, cid, args.lang, args.format, args.certificate)


def save_certificate(c: Client, cid: int, lang: str, fmt: str, out: Path) -> None:
    """GET the certificate and write it to `out`."""
    import httpx

    try:
        r = c.http.get(f"/calibrations/{cid}/certificate",
                       params={"lang": lang, "format": fmt}, timeout=180)
    except httpx.HTTPError as exc:
        raise CliError(f"collector {c.url}: certificate of calibration {cid}: {exc}") from None
    if not r.is_success:
        raise CliError(c._refusal(r))
    out.write_bytes(r.content)


def cmd_run(c: Client, args: argparse.Namespace) -> int:
    """Create (or resume) the calibration, drive every point × repetition, close, print."""
    plan = load_plan(args.plan)
    if args.id is None:
        cid = int(c.call("POST", "/calibrations", json=plan.model_dump(mode="json"))["id"])
        warn(f"calibration {cid} opened")
    else:
        cid = args.id
    done: set[tuple[str, int]] = set()
    if args.id is not None:
        have = c.call("GET", f"/calibrations/{cid}")
        labels = [p.label for p in plan.points]
        if have["procedure"]["points"] != labels or have["quantity"]["name"] != (
                plan.calibration.quantity):
            raise CliError(f"--id {cid}: calibration {cid} is of another plan (quantity"
                           f" {have['quantity']['name']}, points {have['procedure']['points']})",
                           2)
        done = {(p["label"], r["repetition"]) for p in have["points"]
                for r in p.get("repetitions", [])}
    window = plan.instrument.window

    def post_run(body: dict[str, Any]) -> int:
        if window is None:
            raise DriverError("the workload driver posts runs to [instrument] window: give it")
        return int(c.call("POST", f"/windows/{window}/runs", json=body)["id"])

    driver = driver_for(plan, post_run)
    try:
        for point in plan.points:
            for rep in range(1, plan.calibration.repetitions + 1):
                if (point.label, rep) in done:
                    continue
                try:
                    m = driver.measure(point, rep)
                except DriverError as exc:
                    raise CliError(f"calibration {cid}: {exc} (resume with --id {cid})") from None
                c.call("POST", f"/calibrations/{cid}/readings",
                       json=reading_body(point.label, rep, m))
                warn(f"point {point.label!r} repetition {rep}: recorded")
    finally:
        driver.close()
    if "series" in (plan.instrument.kind, plan.reference.kind):
        wait_for_data(c, cid, args.wait_data)
    record = c.call("POST", f"/calibrations/{cid}/close")
    print(points_table(record))
    write_outputs(c, args, cid, record)
    return 0


def cmd_reading(c: Client, args: argparse.Namespace) -> int:
    """Post one reading by hand."""
    body = {"point": args.point, "repetition": args.repetition, "start": args.start,
            "end": args.end, "reference": args.reference, "indicated": args.indicated,
            "run": args.run, "detail": {}}
    out = c.call("POST", f"/calibrations/{args.id}/readings", json=body)
    print(f"calibration {args.id}: point {args.point!r} repetition {args.repetition}:"
          f" {out.get('status')}")
    return 0


def _dispatch(c: Client, args: argparse.Namespace) -> int:
    action = args.calibrate_command
    if action == "start":
        record = c.call("POST", "/calibrations",
                        json=load_plan(args.plan).model_dump(mode="json"))
        print(record["id"])
        return 0
    if action == "run":
        return cmd_run(c, args)
    if action == "reading":
        return cmd_reading(c, args)
    if action in ("close", "show"):
        record = (c.call("POST", f"/calibrations/{args.id}/close") if action == "close"
                  else c.call("GET", f"/calibrations/{args.id}"))
        print(json.dumps(record, indent=2, ensure_ascii=False) if getattr(args, "json", False)
              else points_table(record))
        return 0
    if action == "certificate":
        save_certificate(c, args.id, args.lang, args.format, args.output)
        print(args.output)
        return 0
    for row in c.call("GET", "/calibrations"):
        print(f"{row['id']}  {row['state']:6}  {row['quantity']}  {row['created']}"
              f"  {row.get('statement') or '—'}")
    return 0


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None


def _id(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r}: give a calibration id (1, 2, …)")
    return int(text)


def add_parser(sub: Any) -> None:
    """Register `dcmeter calibrate` and its subcommands."""
    common = connection_options()
    p = sub.add_parser("calibrate", help="calibrate an instrument against a reference (seed 004)")
    cs = p.add_subparsers(dest="calibrate_command", required=True)
    start = cs.add_parser("start", parents=[common], help="open a calibration from a plan file")
    start.add_argument("plan", type=Path, help="the plan (TOML, docs/calibration.md)")
    run = cs.add_parser("run", parents=[common],
                        help="open (or resume), drive every point, close, print the table")
    run.add_argument("plan", type=Path, help="the plan (TOML, docs/calibration.md)")
    run.add_argument("--id", type=_id, default=None, help="resume this calibration")
    run.add_argument("--json", type=Path, default=None, metavar="FILE",
                     help="write the closed record as JSON")
    run.add_argument("--certificate", type=Path, default=None, metavar="FILE",
                     help="write the certificate")
    run.add_argument("--lang", choices=("en", "zh"), default="en")
    run.add_argument("--format", choices=("pdf", "html"), default="pdf")
    run.add_argument("--wait-data", type=positive_seconds, default=DATA_WAIT_S, metavar="S",
                     help="wait up to S seconds for the last dwell's samples (default 60)")
    rd = cs.add_parser("reading", parents=[common], help="post one reading")
    rd.add_argument("id", type=_id)
    rd.add_argument("--point", required=True)
    rd.add_argument("--repetition", type=_id, required=True)
    rd.add_argument("--start", required=True, help="RFC 3339")
    rd.add_argument("--end", required=True, help="RFC 3339")
    rd.add_argument("--reference", type=_number, default=None)
    rd.add_argument("--indicated", type=_number, default=None)
    rd.add_argument("--run", type=_id, default=None, help="the AI window's run id")
    for name, what in (("close", "close and freeze the record"), ("show", "print the record")):
        x = cs.add_parser(name, parents=[common], help=what)
        x.add_argument("id", type=_id)
        x.add_argument("--json", action="store_true", help="the whole record as JSON")
    cert = cs.add_parser("certificate", parents=[common], help="save the certificate")
    cert.add_argument("id", type=_id)
    cert.add_argument("--lang", choices=("en", "zh"), default="en")
    cert.add_argument("--format", choices=("pdf", "html"), default="pdf")
    cert.add_argument("-o", "--output", type=Path, required=True, metavar="FILE")
    cs.add_parser("list", parents=[common], help="the calibrations, newest first")


def run(args: argparse.Namespace, env: Mapping[str, str] = os.environ) -> int:
    """Run `dcmeter calibrate …`; faults print one line and set the exit status (a bad plan
    file raises ConfigError, which dcmeter.cli.main prints, exit 2)."""
    try:
        if getattr(args, "plan", None) is not None:
            load_plan(args.plan)  # a bad plan is reported before the collector is asked
        token = read_token(args.token_file, env)
        url = args.collector or env.get(ENV_URL) or DEFAULT_URL
        with Client(url, token, args.timeout, ca_file(args, env)) as client:
            return _dispatch(client, args)
    except CliError as exc:
        warn(str(exc))
        return exc.code
