"""Golden cases: a site file, samples and an expected result worked out by hand, per folder.

Each folder of tests/golden/ holds `site.toml`, `samples.jsonl`, `case.toml` (`kind`, `start`,
`end`, optional `runs` naming a JSON file of runs, optional `rel_tol`, default 1e-6, and a
`why` saying what the case covers and how the expected figures were worked out) and
`expected.json`: dotted paths into the result (`load.network`, `runs.2.valid`) with the value
each must have. Numbers are compared with `rel_tol`; null, booleans and strings exactly; a
string starting with `~` must occur in the value (for issue texts, in any list item).
"""

from __future__ import annotations

import json
import math
import tomllib
from pathlib import Path
from typing import Any

import pytest

from dcmeter.cli.main import main

GOLDEN = Path(__file__).resolve().parent / "golden"
CASES = sorted(p.name for p in GOLDEN.iterdir() if (p / "case.toml").exists())


def _at(result: Any, path: str) -> Any:
    node = result
    for part in path.split("."):
        node = node[int(part)] if isinstance(node, list) else node[part]
    return node


def _matches(actual: Any, expected: Any, rel_tol: float) -> bool:
    if isinstance(expected, str) and expected.startswith("~"):
        needle = expected[1:]
        items = actual if isinstance(actual, list) else [actual]
        return any(needle in str(item) for item in items)
    if isinstance(expected, bool) or expected is None or isinstance(expected, str):
        return actual == expected
    if isinstance(expected, int | float):
        return isinstance(actual, int | float) and not isinstance(actual, bool) and math.isclose(
            actual, expected, rel_tol=rel_tol, abs_tol=1e-12
        )
    return actual == expected


def test_there_are_golden_cases() -> None:
    assert CASES, "tests/golden holds no case"


@pytest.mark.parametrize("name", CASES)
def test_golden_case(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    folder = GOLDEN / name
    case = tomllib.loads((folder / "case.toml").read_text())
    args = ["evaluate", "--json", "--kind", case["kind"], "--site", str(folder / "site.toml"),
            "--samples", str(folder / "samples.jsonl"), "--start", case["start"],
            "--end", case["end"]]
    if "runs" in case:
        args += ["--runs", str(folder / case["runs"])]
    assert main(args) == 0
    result = json.loads(capsys.readouterr().out)
    expected = json.loads((folder / "expected.json").read_text())
    rel_tol = float(case.get("rel_tol", 1e-6))
    wrong = {
        path: (_at(result, path), want)
        for path, want in expected.items()
        if not _matches(_at(result, path), want, rel_tol)
    }
    assert not wrong, f"{name}: {case.get('why', '')}\n{json.dumps(wrong, indent=1)}"
