"""dcmeter: measurement agent and collector for data-center energy efficiency."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("dcmeter")
except PackageNotFoundError:  # pragma: no cover - running from a bare checkout
    __version__ = "0.0.0"
