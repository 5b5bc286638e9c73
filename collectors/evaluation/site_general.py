"""[general] of the site file: device groups, ratings and coefficients for CEE and CCUE.

Placeholder: issue 4 fills it in (T/CECA-G 0355—2025 6.2, Annexes A and B).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class GeneralSection(BaseModel):
    """[general]: what a general-computing evaluation needs beyond the energies."""

    model_config = ConfigDict(extra="forbid", frozen=True)
