"""Mark a result conforming to T/CECA-G 0355—2025 or not, with the deviations it rests on.

Every result carries `conforming` (bool) and `deviations` (a list of {"rule", "clause",
"standard", "used", "key", "reason"}): the fixed rules of the standard (site_rules.RULES) the
site file changes for this kind of result, whether declared under [deviations] or (a Site
built in code) not. A result with any deviation is `conforming: false`; its levels and
verdict are then the site's reading, not the standard's.
"""

from __future__ import annotations

from typing import Any

from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.evaluation.site_rules import Kind, deviations


def mark(result: dict[str, Any], site: Site, kind: Kind) -> dict[str, Any]:
    """Add `conforming` and `deviations` to `result` (in place) and return it."""
    found = [d.to_json() for d in deviations(site, kind)]
    result["conforming"] = not found
    result["deviations"] = found
    return result
