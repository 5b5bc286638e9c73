"""A correction to python-ipmi 0.6.1's RMCP+ key derivation for SHA-256 cipher suites.

IPMI v2.0 §13.32 derives the session's integrity key K1 and confidentiality key K2 as
HMAC(SIK, Const1) and HMAC(SIK, Const2), with Const1 = 0x01 × 20 and Const2 = 0x02 × 20.
ipmitool, FreeIPMI and OpenBMC use those 20-byte constants for every cipher suite;
python-ipmi 0.6.1 pads them to the digest size, which is the same for SHA-1 (suites 1-3) but
32 bytes for SHA-256 (suites 15-17). With suite 17 a real BMC then drops every message after
the handshake, because the integrity code does not match. `apply()` replaces the key setup
with the specified one; tests/sim/test_sim_bmc.py holds a test that fails once python-ipmi
derives the keys as the BMCs do, so this module can then go.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from typing import Any

_original: Callable[..., None] | None = None


def spec_keys(self: Any, suite: Any, sik: bytes) -> None:
    """`SessionKeys.__init__` as IPMI v2.0 §13.32 specifies it (20-byte constants)."""
    from pyipmi.interfaces import rmcpplus

    self.suite = suite
    digest = rmcpplus.AUTH_ALGORITHMS[suite.authentication][0]
    self.k1 = hmac.new(sik, b"\x01" * 20, digest).digest()
    self.k2 = hmac.new(sik, b"\x02" * 20, digest).digest()


def python_ipmi_keys() -> Callable[..., None]:
    """python-ipmi's own `SessionKeys.__init__`, whether or not `apply()` has run."""
    from pyipmi.interfaces import rmcpplus

    return _original or rmcpplus.SessionKeys.__init__


def apply() -> None:
    """Make python-ipmi derive K1 and K2 from the 20-byte constants (idempotent)."""
    global _original
    from pyipmi.interfaces import rmcpplus

    if _original is None:
        _original = rmcpplus.SessionKeys.__init__
        rmcpplus.SessionKeys.__init__ = spec_keys
