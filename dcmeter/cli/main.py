"""The `dcmeter` command: agent, collector, window, run, evaluate, demo."""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from dcmeter.base.configfile import ConfigError


def cmd_evaluate(args: argparse.Namespace) -> int:
    """Compute a window's result offline from a site file and a JSON-lines samples file."""
    from dcmeter.collectors.evaluation.evaluate import evaluate
    from dcmeter.collectors.evaluation.instruments import add_instruments, series_instruments
    from dcmeter.collectors.evaluation.jsonl import parse_rfc3339, read_jsonl, series_from_records
    from dcmeter.collectors.evaluation.site import load_site

    site = load_site(args.site)
    try:
        start, end = parse_rfc3339(args.start), parse_rfc3339(args.end)
    except ValueError as exc:
        raise ConfigError(f"--start/--end: {exc}") from None
    try:
        series = series_from_records(read_jsonl(args.samples))
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{args.samples}: {exc}") from None
    runs: list[dict[str, object]] = []
    if args.runs is not None:
        try:
            runs = json.loads(args.runs.read_text())
        except (OSError, ValueError) as exc:
            raise ConfigError(f"{args.runs}: {exc}") from None
        if not isinstance(runs, list):
            raise ConfigError(f"{args.runs}: expected a JSON list of runs")
    try:
        result = evaluate(args.kind, site, series, start, end, runs)
    except NotImplementedError as exc:
        raise ConfigError(f"--kind {args.kind}: {exc}") from None
    add_instruments(result, site, series_instruments(series, start, end), series, end)
    if args.json:
        print(json.dumps(result, indent=2, ensure_ascii=False))
    else:
        from dcmeter.cli.render import print_result

        print_result(result)
    return 0


def cmd_simulate(args: argparse.Namespace) -> int:
    """Serve a simulated site until SIGINT or SIGTERM."""
    import asyncio
    import logging
    import signal

    from dcmeter.base.configfile import load_model
    from dcmeter.sim.serve import SimulateFile, serve_forever

    # pymodbus logs a bind failure itself; ours names the device and the port.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
    config = load_model(args.config, SimulateFile)
    if args.agent_config is not None:
        config.simulate.agent_config = args.agent_config
    if args.ports_file is not None:
        config.simulate.ports_file = args.ports_file
    if args.site_file is not None:
        config.simulate.site_file = args.site_file
    if args.base_port is not None:
        if not 1 <= args.base_port <= 65535:
            raise ConfigError(f"--base-port {args.base_port}: give a port in 1..65535")
        config.simulate.base_port = args.base_port

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve_forever(config, stop)

    asyncio.run(main())
    return 0


def _parser(agent_only: bool = False) -> argparse.ArgumentParser:
    """The whole command line, or with `agent_only` just `dcmeter agent …`: the agent's
    commands then import nothing of the collector, the client or the calibration (numpy,
    FastAPI: ~19 MB of RSS a daemon at rest would carry for nothing)."""
    p = argparse.ArgumentParser(
        prog="dcmeter",
        description="Measure data-center energy efficiency (T/CECA-G 0355-2025, GB 40879).",
    )
    sub = p.add_subparsers(dest="command", required=True)
    _add_agent_parser(sub)
    if not agent_only:  # `dcmeter agent …`: no --version there, so no version lookup
        from dcmeter import __version__

        p.add_argument("--version", action="version", version=f"dcmeter {__version__}")
        _add_other_parsers(sub)
    return p


def _add_agent_parser(sub: Any) -> None:
    agent = sub.add_parser("agent", help="the rack agent").add_subparsers(
        dest="agent_command", required=True
    )
    for name, helptext in (
        ("run", "run the agent daemon"),
        ("once", "read every source once and print the samples"),
        ("key", "print the agent's public key (creating it if needed)"),
    ):
        a = agent.add_parser(name, help=helptext)
        a.add_argument("-c", "--config", type=Path, required=True, help="agent TOML file")
        if name == "once":
            a.add_argument("--json", action="store_true", help="one JSON object per line")
        if name == "key":
            a.add_argument("action", nargs="?", choices=("show", "rotate"), default="show",
                           help="show (default): print the public key; rotate: make a new"
                           " key pair the agent announces in its next batch (docs/tls.md)")


def _add_other_parsers(sub: Any) -> None:
    from dcmeter.cli import calibrate_cli, run_cli, source_cli, window_cli

    coll = sub.add_parser("collector", help="the site collector").add_subparsers(
        dest="collector_command", required=True
    )
    serve = coll.add_parser("serve", help="run the collector")
    serve.add_argument("-c", "--config", type=Path, required=True, help="collector TOML file")
    enroll = coll.add_parser("enroll", help="enrol an agent's public key into keys_dir")
    enroll.add_argument("-c", "--config", type=Path, required=True, help="collector TOML file")
    enroll.add_argument("--agent", required=True, help="the agent's id ([agent] id)")
    which = enroll.add_mutually_exclusive_group(required=True)
    which.add_argument("--key-file", type=Path, help="file holding `dcmeter agent key`'s line")
    which.add_argument("--key", help="the public key, ed25519:BASE64")
    enroll.add_argument("--replace", action="store_true",
                        help="replace a different key already enrolled for this agent")
    verify = coll.add_parser("verify", help="re-verify every stored batch's signature")
    verify.add_argument("-c", "--config", type=Path, required=True, help="collector TOML file")
    verify.add_argument("--agent", default=None, help="only this agent's batches")
    from dcmeter.collectors.commands.token_cli import add_token_parser

    add_token_parser(coll, "collector", ("engineer", "reader"))

    window_cli.add_parser(sub)
    source_cli.add_parser(sub)
    run_cli.add_parser(sub)
    calibrate_cli.add_parser(sub)
    from dcmeter.collectors.central import central_cli
    central_cli.add_parser(sub)

    ev = sub.add_parser("evaluate", help="compute a window's result offline")
    ev.add_argument("--site", type=Path, required=True, help="site TOML file")
    ev.add_argument("--samples", type=Path, required=True, help="JSON lines (agent once --json)")
    ev.add_argument("--start", required=True, help="window start, RFC 3339")
    ev.add_argument("--end", required=True, help="window end, RFC 3339")
    ev.add_argument("--kind", choices=("infrastructure", "general", "ai"),
                    default="infrastructure", help="window kind (default infrastructure)")
    ev.add_argument("--runs", type=Path, default=None,
                    help="AI windows: JSON list of the window's runs")
    ev.add_argument("--json", action="store_true", help="print the result as JSON")

    sim = sub.add_parser("simulate", help="serve a simulated site (meters, BMCs, SNMP agents)")
    sim.add_argument("-c", "--config", type=Path, required=True, help="simulate TOML file")
    sim.add_argument("--agent-config", type=Path, default=None,
                     help="write a complete agent config reading every simulated device")
    sim.add_argument("--site-file", type=Path, default=None,
                     help="write the site file matching the agent config")
    sim.add_argument("--base-port", type=int, default=None,
                     help="stable ports: devices listen on N, N+1, ... (docs/simulator.md)")
    sim.add_argument("--ports-file", type=Path, default=None,
                     help="write the devices and their ports as JSON to this file")

    demo = sub.add_parser("demo", help="simulated site, collector and agent on loopback")
    demo.add_argument("--seconds", type=float, default=30.0, help="window length (default 30)")
    demo.add_argument("--data-dir", type=Path, default=None, help="where to keep the data")


def _dispatch(args: argparse.Namespace) -> int:
    handlers: dict[str, Callable[[], int]] = {}
    if args.command == "agent":
        from dcmeter.agent import cli as agent_cli

        handlers = {
            "run": lambda: agent_cli.cmd_run(args.config),
            "once": lambda: agent_cli.cmd_once(args.config, args.json),
            "key": lambda: agent_cli.cmd_key(args.config),
        }
        if args.agent_command == "key" and args.action == "rotate":
            from dcmeter.agent.rotation import cmd_rotate

            return cmd_rotate(args.config)
        return handlers[args.agent_command]()
    if args.command == "collector" and args.collector_command in ("enroll", "verify"):
        from dcmeter.collectors.commands import keys_cli

        if args.collector_command == "enroll":
            return keys_cli.cmd_enroll(args.config, args.agent, args.key_file, args.key,
                                       args.replace)
        return keys_cli.cmd_verify(args.config, args.agent)
    if args.command == "collector":
        if args.collector_command == "token":
            from dcmeter.collectors import config
            from dcmeter.collectors.commands.token_cli import run_token_command
            from dcmeter.collectors.storage.store import Store

            return run_token_command(
                args, lambda p: Store(config.load(p).collector.store), "collector",
                ("engineer", "reader"),
            )
        from dcmeter.collectors.commands import cli as collector_cli

        return collector_cli.cmd_serve(args.config)
    if args.command == "central":
        from dcmeter.collectors.central import central_cli
        return central_cli.run(args)
    from dcmeter.cli import calibrate_cli, run_cli, source_cli, window_cli

    if args.command == "window":
        return window_cli.run(args)
    if args.command == "run":
        return run_cli.run(args)
    if args.command == "calibrate":
        return calibrate_cli.run(args)
    if args.command == "source":
        return source_cli.run(args)
    if args.command == "evaluate":
        return cmd_evaluate(args)
    if args.command == "simulate":
        return cmd_simulate(args)
    from dcmeter.cli.demo import run_demo

    return run_demo(args.seconds, args.data_dir)


def _parse_args(argv: Sequence[str]) -> argparse.Namespace:
    """Parse `argv`; `dcmeter agent …` with the agent's parser only, and the daemon (`agent
    run`, which lives at rest for months) with its unused libraries kept out (agent/lean.py;
    `agent once` prints its table with rich)."""
    agent_only = list(argv[:1]) == ["agent"]
    if list(argv[:2]) == ["agent", "run"]:
        from dcmeter.agent import lean

        lean.keep_out()
    return _parser(agent_only).parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dcmeter` console script."""
    args = _parse_args(sys.argv[1:] if argv is None else argv)
    try:
        return _dispatch(args)
    except ConfigError as exc:
        # One line per fault, each greppable on its own.
        for line in exc.lines:
            print(f"dcmeter: configuration error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
