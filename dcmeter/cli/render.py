"""Print a window's result for a person (rich), beside true values where a simulator knows them."""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.table import Table

# C0 and C1 controls (ESC starts every terminal escape sequence) and the bidirectional
# overrides that reorder what a terminal shows: none belongs in a name, label or note.
_CONTROL = re.compile("[\x00-\x1f\x7f-\x9f\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def plain(value: object) -> str:
    """`value` as text Rich prints literally: markup escaped, each control character shown as
    U+FFFD (replaced, not dropped, so `meter\\x1b-it` cannot pass for `meter-it`)."""
    return escape(_CONTROL.sub("\ufffd", str(value)))


def plain_list(values: Iterable[object]) -> str:
    """`values` joined with ", ", each as `plain` makes it."""
    return ", ".join(plain(v) for v in values)


def result_console(**kwargs: Any) -> Console:
    """A Console for results: no highlighting, no `:emoji:` codes turned into pictures."""
    return Console(highlight=False, emoji=False, **kwargs)


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return plain(v)


def level_text(result: Mapping[str, Any], name: str) -> str:
    """A level field as text: the level, or the would-be level marked indicative, or "—";
    marked when the result does not conform to the standard's fixed rules.

    A result that is not valid carries its level only in `<name>_indicative`
    (collectors/evaluation/levels.py): it is never shown as a bare level.
    """
    value = result.get(name)
    indicative = result.get(f"{name}_indicative")
    if value is not None:
        text = plain(value)
    elif indicative is not None:
        text = f"{plain(indicative)} (indicative: result not valid)"
    else:
        return "—"
    if result.get("conforming") is False:  # the standard's fixed rules changed by the site
        text += " [red](not conforming: deviations declared)[/red]"
    return text


def print_result(
    result: Mapping[str, Any], truth: Mapping[str, float] | None = None,
    console: Console | None = None,
) -> None:
    """Print the indicators, their provenance and the data quality of one result."""
    out = console or result_console()
    w = result["window"]
    _print_conformance(out, result)
    out.print(
        f"[bold]Window[/bold] {plain(w.get('id', ''))} {plain(w['start'])} → {plain(w['end'])}"
        f" ({w['hours']:.4f} h)"
    )
    print_verdict(out, result)
    t = Table("indicator", "measured", *(["true (simulator)", "error"] if truth else []))
    rows = [
        ("E_total kWh", "total", result["energy_kwh"]["total"]),
        ("E_IT kWh", "it", result["energy_kwh"]["it"]),
        ("E_green kWh", "green", result["energy_kwh"]["green"]),
        ("PUE", "pue", result["pue"]),
        ("CE kg CO2", "carbon_kg", result["carbon_kg"]),
        ("CUE kg/kWh", "cue", result["cue"]),
    ]
    for label, key, value in rows:
        cells = [label, _fmt(value)]
        if truth:
            true = truth.get(key)
            err = (
                f"{(value - true) / true * 100:+.3f} %"
                if isinstance(value, float) and true
                else "—"
            )
            cells += [_fmt(true), err]
        t.add_row(*cells)
    out.print(t)
    out.print(f"PUE level (GB 40879): {level_text(result, 'pue_level')}")
    src = result.get("sources", {})
    for role in ("total", "it", "green"):
        r = src.get(role) or {}
        if r.get("sources"):
            out.print(
                f"  {role}: {plain_list(r['sources'])} · method {plain(r.get('method'))} · "
                f"points {plain_list(r.get('points') or []) or '—'}"
            )
    _print_uncertainty(out, result.get("uncertainty"))
    if result.get("kind") == "general":
        _print_general(out, result)
    if result.get("kind") == "ai":
        _print_ai(out, result)
    q = result["quality"]
    colour = "green" if q["valid"] else "red"
    out.print(f"Quality: [{colour}]{'valid' if q['valid'] else 'NOT valid'}[/{colour}]")
    for issue in q["issues"]:
        out.print(f"  - {plain(issue)}")  # issues quote "[general]" and agents' names



def _print_conformance(out: Console, result: Mapping[str, Any]) -> None:
    """Say first when the result rests on declared deviations from the standard's rules."""
    if result.get("conforming") is not False:
        return
    out.print("[bold red]NOT conforming to T/CECA-G 0355—2025[/bold red]: the site file"
              " declares deviations; levels are the site's reading, not the standard's")
    for d in result.get("deviations") or []:
        out.print(f"  - {plain(d.get('rule'))} ({plain(d.get('clause'))}): standard"
                  f" {plain(d.get('standard'))}, used {plain(d.get('used'))};"
                  f" reason: {plain(d.get('reason'))}")


def _sci(v: Any) -> str:
    return "—" if not isinstance(v, int | float) else f"{v:.4g}"


def _pct(v: Any) -> str:
    return "—" if not isinstance(v, int | float) else f"{v * 100:.2f} %"


def _print_uncertainty(out: Console, u: Mapping[str, Any] | None) -> None:
    if not u:
        return
    parts = [f"{k.removesuffix('_rel')} ±{_pct(v)}" for k, v in u.items()
             if k.endswith("_rel") and isinstance(v, int | float)]
    if parts:
        out.print("Uncertainty: " + ", ".join(parts))


def _print_general(out: Console, r: Mapping[str, Any]) -> None:
    load = r.get("load") or {}
    out.print(
        f"Load (method {_fmt(r.get('load_method'))}): compute {_pct(load.get('compute'))}, "
        f"storage {_pct(load.get('storage'))}, network {_pct(load.get('network'))}"
    )
    out.print(
        f"C {_fmt(r.get('computing_power'))} · CEE {_fmt(r.get('cee'))} points/Wh "
        f"(level {level_text(r, 'cee_level')}) · CCUE {_sci(r.get('ccue'))} kg/point"
    )


def _print_ai(out: Console, r: Mapping[str, Any]) -> None:
    runs = r.get("runs") or []
    if runs:
        t = Table("phase", "model", "rep", "GFLOPs", "energy Wh", "AEE GFLOPs/Wh", "valid")
        for run in runs:
            flops = run.get("flops")
            t.add_row(
                plain(run.get("phase")), plain(run.get("model")), _fmt(run.get("repetition")),
                _fmt(flops / 1e9 if isinstance(flops, int | float) else None, 1),
                _fmt(run.get("energy_wh"), 3), _fmt(run.get("aee_gflops_per_wh"), 2),
                "yes" if run.get("valid") else "no",
            )
        out.print(t)
    out.print(
        f"AEE {_fmt(r.get('aee_gflops_per_wh'), 2)} GFLOPs/Wh (train "
        f"{_fmt(r.get('aee_train'), 2)}, infer {_fmt(r.get('aee_infer'), 2)}; level "
        f"{level_text(r, 'aee_level')}) · ACE {_sci(r.get('ace_kg_per_flop'))} kg/FLOP"
    )


_CLAUSE = {"infrastructure": "4.1", "general": "4.2", "ai": "4.3"}


def verdict_line(result: Mapping[str, Any]) -> str | None:
    """The clause 4 verdict as one line of text, never a bare category when indicative."""
    v = result.get("verdict")
    if not v:
        return None
    clause = _CLAUSE.get(str(result.get("kind")), "4")
    head = f"Verdict (T/CECA-G 0355—2025 {clause}): "
    if v.get("indicative"):
        return head + f"INDICATIVE ONLY, not a verdict (figures would give: {v.get('category')})"
    return head + str(v.get("category"))


def print_verdict(out: Console, result: Mapping[str, Any]) -> None:
    """Print the verdict line and its basis (the level, the table, clause 5's status)."""
    v, line = result.get("verdict"), verdict_line(result)
    if not v or line is None:
        return
    colour = "yellow" if v.get("indicative") else "green" if v.get("category") != "none" else ""
    out.print(f"[bold {colour}]{plain(line)}[/]" if colour else f"[bold]{plain(line)}[/bold]")
    for item in v.get("basis") or []:
        out.print(f"  - {plain(item.get('text') if isinstance(item, Mapping) else item)}")
