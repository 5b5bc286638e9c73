"""One entry point for every window kind, shared by the collector and `dcmeter evaluate`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Literal

from collectors.evaluation.infrastructure import evaluate_infrastructure
from collectors.evaluation.series import Series
from collectors.evaluation.site import Site

Kind = Literal["infrastructure", "general", "ai"]
KINDS: tuple[Kind, ...] = ("infrastructure", "general", "ai")


def source_ids(kind: Kind, site: Site) -> list[str]:
    """The source ids whose samples an evaluation of `kind` reads."""
    e = site.energy
    ids = {*e.total, *e.it, *e.green}
    return sorted(ids)


def evaluate(
    kind: Kind,
    site: Site,
    series: Sequence[Series],
    start: float,
    end: float,
    runs: Sequence[dict[str, Any]] = (),
) -> dict[str, Any]:
    """The JSON-ready result of a window of `kind` over [start, end] (epoch s)."""
    if kind == "infrastructure":
        return evaluate_infrastructure(site, series, start, end)
    raise NotImplementedError(f"window kind {kind!r} is not evaluated yet")
