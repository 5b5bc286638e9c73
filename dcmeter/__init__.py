"""dcmeter: measurement agent and collector for data-center energy efficiency.

The distribution's one import name. Its rooms, top to bottom: dcmeter.cli (the command
line), dcmeter.collectors and dcmeter.sim, dcmeter.agent, dcmeter.base (the shared base).
dcmeter.agent and dcmeter.collectors are the repository's agent/ and collectors/ folders
(linked here, copied into the wheel). Imports point down only; pyproject.toml's
[tool.importlinter] holds the rules and tests/test_layering.py checks them.
"""

from __future__ import annotations


def __getattr__(name: str) -> str:
    """`dcmeter.__version__`, looked up on first use (PEP 562): importlib.metadata and the
    email parser it brings cost ~2.5 MB of RSS, which the agent daemon, never printing its
    version, need not carry (docs/benchmarks.md §2)."""
    if name != "__version__":
        raise AttributeError(f"module 'dcmeter' has no attribute {name!r}")
    from importlib.metadata import PackageNotFoundError, version

    try:
        found = version("dcmeter")
    except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        found = "0.0.0"
    globals()["__version__"] = found
    return found
