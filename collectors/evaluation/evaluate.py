"""One entry point for every window kind, shared by the collector and `dcmeter evaluate`."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

from dcmeter.collectors.evaluation.ai import evaluate_ai
from dcmeter.collectors.evaluation.conformance import mark
from dcmeter.collectors.evaluation.finite import scrub
from dcmeter.collectors.evaluation.general import evaluate_general
from dcmeter.collectors.evaluation.infrastructure import evaluate_infrastructure
from dcmeter.collectors.evaluation.instruments import with_site_accuracy
from dcmeter.collectors.evaluation.issues import attach_details
from dcmeter.collectors.evaluation.levels import withhold_levels
from dcmeter.collectors.evaluation.loads import GaugeMean
from dcmeter.collectors.evaluation.quality import tidy_sources
from dcmeter.collectors.evaluation.reconcile import add_reconciliation
from dcmeter.collectors.evaluation.series import Series
from dcmeter.collectors.evaluation.site import Site, reconciled_sources
from dcmeter.collectors.evaluation.verdict import verdict

Kind = Literal["infrastructure", "general", "ai"]
KINDS: tuple[Kind, ...] = ("infrastructure", "general", "ai")


def source_ids(kind: Kind, site: Site) -> list[str]:
    """The source ids whose samples an evaluation of `kind` reads."""
    e = site.energy
    ids = {*e.total, *e.it, *e.green}
    if kind == "ai" and site.ai is not None:
        a = site.ai
        ids |= {*a.servers, *a.gpus, *a.network, *a.storage}
    if kind == "general" and site.general is not None:
        ids |= {s for g in site.general.groups for s in g.sources}
    ids |= set(reconciled_sources(site))  # every kind reports the reconciliation
    return sorted(ids)


def evaluate(
    kind: Kind,
    site: Site,
    series: Sequence[Series],
    start: float,
    end: float,
    runs: Sequence[dict[str, Any]] = (),
    *,
    means: Mapping[Series, GaugeMean] | None = None,
    qualities: Mapping[Series, dict[str, Any]] | None = None,
) -> dict[str, Any]:
    """The JSON-ready result of a window of `kind` over [start, end] (epoch s).

    `means` and `qualities` (general only) are the collector's gauge folds' figures. Every
    number of the result is finite (collectors/evaluation/finite.py). A result that is not
    valid carries its levels only as `<field>_indicative` (collectors/evaluation/levels.py).
    `conforming` and `deviations` say which fixed rules of the standard the site changes
    (collectors/evaluation/conformance.py). A source's accuracy stated under [[instruments]]
    replaces its agent's (collectors/evaluation/instruments.py).
    """
    if swap := with_site_accuracy(site, series):
        series = [swap.get(s, s) for s in series]
        means = None if means is None else {swap.get(s, s): m for s, m in means.items()}
        qualities = (None if qualities is None
                     else {swap.get(s, s): q for s, q in qualities.items()})
    if kind == "infrastructure":
        result = evaluate_infrastructure(site, series, start, end)
    elif kind == "general":
        result = evaluate_general(site, series, start, end, means=means, qualities=qualities)
    elif kind == "ai":
        result = evaluate_ai(site, series, runs, start, end)
    else:
        raise NotImplementedError(f"window kind {kind!r} is not evaluated yet")
    add_reconciliation(result, site, series, start, end)
    tidy_sources(result["quality"])
    mark(result, site, kind)
    withhold_levels(result)
    result["verdict"] = verdict(kind, result, site.equipment)  # clause 4, after every field
    return attach_details(scrub(result))
