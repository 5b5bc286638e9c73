"""The rooms and their arrows (docs/architecture.md): pyproject's import-linter contracts hold,
each contract fails on the import it forbids, and the distribution has one import name."""

from __future__ import annotations

import ast
import os
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
CONTRACTS = {c["id"]: c["name"] for c in PYPROJECT["tool"]["importlinter"]["contracts"]}
# The repository's own Python outside the package: it must import the package by its name.
TREES = ("agent", "collectors", "dcmeter", "tests", "bench", "packaging")


def lint(root: Path) -> subprocess.CompletedProcess[str]:
    """Run import-linter on the `dcmeter` package found first under `root`."""
    env = {**os.environ, "PYTHONPATH": str(root)}
    return subprocess.run(
        [str(LINT), "--config", str(root / "pyproject.toml"), "--no-cache"],
        cwd=root, env=env, capture_output=True, text=True, timeout=300,
    )


def test_every_contract_is_kept() -> None:
    assert set(CONTRACTS) == {
        "rooms", "collector-rooms", "wire-only", "pure-evaluation", "sources-read", "no-circles",
    }
    done = lint(ROOT)
    assert done.returncode == 0, done.stdout + done.stderr
    for name in CONTRACTS.values():
        assert f"{name} KEPT" in done.stdout


# (file under dcmeter/, the line added to it, the contract that must break)
BREACHES = [
    ("base/log.py", "import dcmeter.agent.wire", "rooms"),
    ("agent/wire.py", "from dcmeter.collectors.storage import db", "rooms"),
    ("collectors/storage/deadline.py", "from dcmeter.collectors.web import api", "collector-rooms"),
    ("collectors/intake/ingest.py", "from dcmeter.collectors.reporting import report",
     "collector-rooms"),
    ("collectors/storage/store.py", "from dcmeter.agent import buffer", "wire-only"),
    ("collectors/evaluation/exact.py", "import sqlite3", "pure-evaluation"),
    ("agent/sources/host.py", "from dcmeter.agent import buffer", "sources-read"),
    # the circle issue 15 broke: the error translation naming the source's config class
    ("agent/sources/ipmi_errors.py",
     "if TYPE_CHECKING:\n    from dcmeter.agent.sources.ipmi import IpmiConfig", "no-circles"),
]


@pytest.fixture(scope="module")
def tree_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of the package (the agent/ and collectors/ links followed) and pyproject.toml."""
    root = tmp_path_factory.mktemp("layers")
    shutil.copytree(ROOT / "dcmeter", root / "dcmeter", symlinks=False,
                    ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", root / "pyproject.toml")
    return root


@pytest.mark.parametrize(("where", "line", "contract"), BREACHES)
def test_a_forbidden_import_breaks_its_contract(
    tree_copy: Path, where: str, line: str, contract: str
) -> None:
    path = tree_copy / "dcmeter" / where
    before = path.read_text()
    path.write_text(before + "\n" + line + "\n")
    try:
        done = lint(tree_copy)
    finally:
        path.write_text(before)
    assert done.returncode == 1, done.stdout + done.stderr
    assert f"{CONTRACTS[contract]} BROKEN" in done.stdout, done.stdout
    assert sum(f"{n} BROKEN" in done.stdout for n in CONTRACTS.values()) >= 1


def test_one_top_level_import_name() -> None:
    """The wheel holds `dcmeter` only: no `agent` or `collectors` beside it in site-packages."""
    include = PYPROJECT["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = find_packages(where=str(ROOT), include=include)
    assert {p.split(".")[0] for p in packages} == {"dcmeter"}
    for room in ("dcmeter.base", "dcmeter.cli", "dcmeter.sim", "dcmeter.agent.sources",
                 "dcmeter.collectors.evaluation", "dcmeter.collectors.storage",
                 "dcmeter.collectors.web", "dcmeter.collectors.central"):
        assert room in packages
    # A folder of modules without __init__.py would be left out of the wheel.
    for folder in ("agent", "collectors", "dcmeter"):
        for d in (ROOT / folder).rglob("*"):
            if d.is_dir() and d.name != "__pycache__" and any(d.glob("*.py")):
                assert (d / "__init__.py").is_file(), f"{d} has modules but no __init__.py"


def test_nothing_imports_the_folders_by_their_own_names() -> None:
    """`import agent` would work from the repository root and load a second copy of a module
    (two classes of one name, two registries): every import names `dcmeter.…`."""
    bad = []
    for tree in TREES:
        for path in (ROOT / tree).rglob("*.py"):
            if "__pycache__" in path.parts:
                continue
            for node in ast.walk(ast.parse(path.read_text(), str(path))):
                names = []
                if isinstance(node, ast.Import):
                    names = [a.name for a in node.names]
                elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                    names = [node.module]
                bad += [f"{path.relative_to(ROOT)}:{node.lineno} {n}" for n in names
                        if n.split(".")[0] in ("agent", "collectors")]
    assert bad == []
