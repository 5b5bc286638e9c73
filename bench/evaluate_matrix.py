"""Evaluation cost over windows of 1 h, 24 h and 7 days at 1,000 and 10,000 sources.

    .venv/bin/python bench/evaluate_matrix.py [--json FILE] [--store-limit 15000000]
        [--sources 1000,10000] [--hours 1,24,168]

Runs bench/evaluate_window.py once per case, each in its own process (so its peak RSS is its
own): `evaluate("general", …)` on series in memory, and, where the store would hold at most
`--store-limit` samples, the collector's path `window_result` from a SQLite store in a
temporary folder (raw samples, then the per-window folds). A case whose series would not fit
in memory (about 60 bytes a sample, against half of MemAvailable) is skipped and says why;
so is a store over the limit (fill time and size). Store files are deleted after each case.
Prints one table and writes the figures as JSON (`--json FILE`).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
BYTES_PER_SAMPLE = 60  # max RSS / samples of the in-memory run, 10,000 × 24 h: 801 MB / 14.4 M


def samples(sources: int, hours: int) -> int:
    """Samples in a case, as evaluate_window.build makes them (hosts + 2 meters + 6 ports)."""
    return (sources + 8) * (int(hours * 3600 / 60) + 3)


def mem_available() -> int:
    """MemAvailable of /proc/meminfo, bytes."""
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    raise SystemExit("no MemAvailable in /proc/meminfo")


def run_case(sources: int, hours: int, store_limit: int, tmp: Path) -> dict[str, Any]:
    """One case through evaluate_window.py; its figures, or the reason it was skipped."""
    n = samples(sources, hours)
    row: dict[str, Any] = {"sources": sources, "hours": hours, "samples": n}
    need = n * BYTES_PER_SAMPLE
    if need > mem_available() // 2:
        row["skipped"] = (f"needs ~{need / 2**30:.1f} GiB in memory, over half of the"
                          f" {mem_available() / 2**30:.1f} GiB available")
        return row
    out = tmp / f"{sources}-{hours}.json"
    cmd = [sys.executable, str(HERE / "evaluate_window.py"), "--sources", str(sources),
           "--hours", str(hours), "--json", str(out)]
    store = tmp / f"{sources}-{hours}.sqlite"
    if n <= store_limit:
        cmd += ["--store", str(store)]
    else:
        row["store_skipped"] = (f"{n:,} samples over --store-limit {store_limit:,}: fill"
                                f" ~{n / 100_000 / 60:.0f} min, ~{n * 54 / 2**30:.1f} GB")
    try:
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
    finally:
        for f in tmp.glob(f"{sources}-{hours}.sqlite*"):
            f.unlink()
    return row | json.loads(out.read_text())


def cell(row: dict[str, Any], key: str) -> str:
    """A table cell: the figure, or "skip"."""
    value = row.get(key)
    return "skip" if value is None else f"{value:.2f}" if isinstance(value, float) else str(value)


def main() -> None:
    """Run the matrix, print the table, write the JSON."""
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--sources", default="1000,10000")
    p.add_argument("--hours", default="1,24,168")
    p.add_argument("--store-limit", type=int, default=15_000_000,
                   help="largest case (samples) also run through a collector store")
    p.add_argument("--json", type=Path, default=None, help="write the figures here")
    args = p.parse_args()
    try:
        cases = [(int(s), int(h)) for s in args.sources.split(",")
                 for h in args.hours.split(",")]
    except ValueError:
        raise SystemExit("--sources and --hours take comma-separated whole numbers") from None
    rows = []
    with tempfile.TemporaryDirectory(prefix="dcmeter-eval-") as tmp:
        for sources, hours in cases:
            print(f"  {sources} sources × {hours} h …", flush=True)
            rows.append(run_case(sources, hours, args.store_limit, Path(tmp)))
    print(f"{'sources':>8} {'window':>7} {'samples':>12} {'evaluate s':>11}"
          f" {'collector raw s':>16} {'collector folds s':>18} {'RSS MB':>7}")
    for r in rows:
        print(f"{r['sources']:>8,} {format(r['hours'], 'g') + ' h':>7} {r['samples']:>12,}"
              f" {cell(r, 'evaluate_s'):>11} {cell(r, 'window_result_s'):>16}"
              f" {cell(r, 'window_result_folds_s'):>18} {cell(r, 'max_rss_mb'):>7}")
    for r in rows:
        for key in ("skipped", "store_skipped"):
            if key in r:
                print(f"{r['sources']:,} × {r['hours']:g} h: {key.replace('_', ' ')}: {r[key]}")
    if args.json is not None:
        args.json.write_text(json.dumps(rows, indent=1) + "\n")


if __name__ == "__main__":
    main()
