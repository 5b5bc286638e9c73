"""dcmeter: measurement agent and collector for data-center energy efficiency.

The distribution's one import name. Its rooms, top to bottom: dcmeter.cli (the command
line), dcmeter.collectors and dcmeter.sim, dcmeter.agent, dcmeter.base (the shared base).
dcmeter.agent and dcmeter.collectors are the repository's agent/ and collectors/ folders
(linked here, copied into the wheel). Imports point down only; pyproject.toml's
[tool.importlinter] holds the rules and tests/test_layering.py checks them.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dcmeter")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"
