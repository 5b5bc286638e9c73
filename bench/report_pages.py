"""Render the first page of an evaluation report in English and Chinese, as docs/report.md
shows them (docs/report-en.png, docs/report-zh.png).

The window is the language test's infrastructure window (tests/collectors/reporting/
test_report_language.py): a real SQLite store filled with signed batches, two meters that
say what they are, a clause 5 register with an item in every status and one instrument past
its calibration date; the site file here adds an address and an operator. Not a benchmark:
it needs Chromium (as the tests do).

    python bench/report_pages.py --out docs
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT), str(ROOT / "tests"), str(ROOT / "tests" / "collectors" / "reporting")]

from conftest import StoreLocations  # noqa: E402  (tests/conftest.py)
from test_report import stored_window  # noqa: E402
from test_report_language import INFRA_SITE, INFRA_SOURCES  # noqa: E402

from dcmeter.collectors.reporting.report import render_html  # noqa: E402
from dcmeter.collectors.reporting.report_print import render_png  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=ROOT / "docs", help="folder for the PNGs")
    ap.add_argument("--width", type=int, default=1000)
    ap.add_argument("--height", type=int, default=1400)
    args = ap.parse_args()
    site = INFRA_SITE.model_copy(update={"site": INFRA_SITE.site.model_copy(update={
        "name": "Example Data Center, Hall A",
        "address": "No. 1 Example Road, Pudong, Shanghai",
        "operator": "Example Data Center Operations Co., Ltd."})})
    with tempfile.TemporaryDirectory() as tmp:
        result, series = stored_window(StoreLocations(None), Path(tmp), "infrastructure",
                                       2.0, 1, site, INFRA_SOURCES)
        for lang in ("en", "zh"):
            out = args.out / f"report-{lang}.png"
            render_png(render_html(result, series, lang), out, args.width, args.height)
            print(f"{out}: {out.stat().st_size} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
