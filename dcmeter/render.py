"""Print a window's result for a person (rich), beside true values where a simulator knows them."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from rich.console import Console
from rich.table import Table


def _fmt(v: Any, digits: int = 4) -> str:
    if v is None:
        return "—"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def print_result(
    result: Mapping[str, Any], truth: Mapping[str, float] | None = None,
    console: Console | None = None,
) -> None:
    """Print the indicators, their provenance and the data quality of one result."""
    out = console or Console()
    w = result["window"]
    out.print(
        f"[bold]Window[/bold] {w.get('id', '')} {w['start']} → {w['end']} ({w['hours']:.4f} h)"
    )
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
    out.print(f"PUE level (GB 40879): {_fmt(result['pue_level'])}")
    src = result.get("sources", {})
    for role in ("total", "it", "green"):
        r = src.get(role) or {}
        if r.get("sources"):
            out.print(
                f"  {role}: {', '.join(r['sources'])} · method {r.get('method')} · "
                f"points {', '.join(r.get('points') or []) or '—'}"
            )
    q = result["quality"]
    colour = "green" if q["valid"] else "red"
    out.print(f"Quality: [{colour}]{'valid' if q['valid'] else 'NOT valid'}[/{colour}]")
    for issue in q["issues"]:
        out.print(f"  - {issue}")
