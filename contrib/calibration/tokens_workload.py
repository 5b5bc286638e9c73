#!/usr/bin/env python3
"""A stand-in inference workload for calibrating tokens/s (docs/calibration.md).

It "loads a model" (sleeps --startup seconds), then "generates" --tokens tokens at a steady
--rate (tokens/s), each at its own scheduled instant, and writes its report to
$DCMETER_RUN_REPORT (and prints it): `tokens` and `elapsed_s`, the seconds of the generation
loop alone, as a framework reports its own throughput. dcmeter's tokens/s of the run divides
by the whole run, start-up included: the difference is what a calibration shows.
Standard library only.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--tokens", type=int, default=1000, help="tokens to generate (default 1000)")
    p.add_argument("--rate", type=float, default=500.0, help="tokens/s (default 500)")
    p.add_argument("--startup", type=float, default=0.0, help="seconds before the first token")
    p.add_argument("--framework-rate", action="store_true",
                   help="also report framework_tokens_per_s (tokens / elapsed_s)")
    args = p.parse_args(argv)
    if args.tokens < 1 or not args.rate > 0 or args.startup < 0:
        p.error("--tokens >= 1, --rate > 0 and --startup >= 0")
    time.sleep(args.startup)
    t0 = time.monotonic()
    for i in range(1, args.tokens + 1):
        # Token i is due at t0 + i / rate: a late token does not delay the next ones' schedule.
        wait = t0 + i / args.rate - time.monotonic()
        if wait > 0:
            time.sleep(wait)
    elapsed = time.monotonic() - t0
    report: dict[str, float] = {"tokens": args.tokens, "elapsed_s": elapsed}
    if args.framework_rate:
        report["framework_tokens_per_s"] = args.tokens / elapsed
    text = json.dumps(report)
    path = os.environ.get("DCMETER_RUN_REPORT")
    if path:
        with open(path, "w", encoding="utf-8") as f:
            f.write(text)
    print(text, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
