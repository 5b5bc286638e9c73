"""Render the first page of a calibration certificate in English and Chinese, as
docs/calibration.md shows them (docs/calibration-certificate-en.png, -zh.png).

The record is the certificate tests' power calibration (tests/collectors/reporting/
calibration_record.json: three load points against a reference analyser, the guarded rule,
one conditional pass). Not a benchmark: it needs Chromium (as the tests do).

    python bench/certificate_pages.py --out docs
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from dcmeter.collectors.reporting.certificate import render_certificate  # noqa: E402
from dcmeter.collectors.reporting.report_print import render_png  # noqa: E402

RECORD = ROOT / "tests" / "collectors" / "reporting" / "calibration_record.json"


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for the PNGs")
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--height", type=int, default=1400)
    args = ap.parse_args()
    record = json.loads(RECORD.read_text(encoding="utf-8"))
    for lang in ("en", "zh"):
        out = args.out / f"calibration-certificate-{lang}.png"
        render_png(render_certificate(record, lang), out, args.width, args.height)
        print(f"{out}: {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
