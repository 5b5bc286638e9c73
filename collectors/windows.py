"""A window's current result: the stored samples around it, through the shared evaluation."""

from __future__ import annotations

from typing import Any

from collectors.evaluation.evaluate import evaluate, source_ids
from collectors.evaluation.jsonl import rfc3339
from collectors.evaluation.site import Site
from collectors.store import Store, Window

KINDS = ("infrastructure", "general", "ai")
SUPPORTED = ("infrastructure",)


def window_result(store: Store, site: Site, w: Window, now_ns: int) -> dict[str, Any]:
    """Evaluate `w` over [start, end], or [start, now] while it is open."""
    end_ns = w.end_ns if w.end_ns is not None else now_ns
    # Samples just outside the window let the evaluation interpolate at its edges.
    margin_ns = int(site.quality.max_gap_s * 1e9)
    kind: Any = w.kind
    series = store.series(source_ids(kind, site), w.start_ns - margin_ns, end_ns + margin_ns)
    result = evaluate(kind, site, series, w.start_ns / 1e9, end_ns / 1e9)
    result["window"] = {
        "id": w.id,
        "kind": w.kind,
        "state": "open" if w.end_ns is None else "closed",
        "note": w.note,
        **result["window"],
    }
    if w.end_ns is None:
        result["quality"]["issues"].append(
            f"window still open: result as of {rfc3339(now_ns / 1e9)}"
        )
    return result
