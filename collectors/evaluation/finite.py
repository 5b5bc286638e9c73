"""The last safety net of a result: no NaN or infinity ever reaches JSON.

Plausibility limits (collectors/evaluation/plausibility.py) keep absurd values out of the
figures; should a figure still come out non-finite (an overflow nobody foresaw), it is
replaced by null, named in `quality.issues` and the result is not valid, rather than the
route failing on JSON that cannot be written (RFC 8259 has no NaN or Infinity).
"""

from __future__ import annotations

import math
from typing import Any

from dcmeter.collectors.evaluation.issues import add_issue

SHOWN = 10  # paths named in the issue


def _walk(x: Any, path: str, found: list[str]) -> Any:
    if isinstance(x, float):
        if math.isfinite(x):
            return x
        found.append(path or "(result)")
        return None
    if isinstance(x, dict):
        return {k: _walk(v, f"{path}.{k}" if path else str(k), found) for k, v in x.items()}
    if isinstance(x, list | tuple):
        return type(x)(_walk(v, f"{path}[{i}]", found) for i, v in enumerate(x))
    return x


def scrub(result: dict[str, Any]) -> dict[str, Any]:
    """Return `result` with every non-finite number replaced by None, and say where.

    The paths are listed in one issue of `quality` (the first 10 named), which is then not
    valid; a result without non-finite numbers is returned unchanged.
    """
    found: list[str] = []
    out = _walk(result, "", found)
    if not found:
        return result
    quality = out.get("quality")
    if isinstance(quality, dict):
        more = {"more": len(found) - SHOWN} if len(found) > SHOWN else {}
        add_issue(quality, "nonfinite_figures_more" if more else "nonfinite_figures",
                  paths=found[:SHOWN], **more)
        quality["valid"] = False
    return dict(out)
