"""[ai] of the site file: servers under test, weights and precision conversion for AEE and ACE.

Placeholder: issue 4 fills it in (T/CECA-G 0355—2025 6.3, Annexes C to E).
"""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict


class AiSection(BaseModel):
    """[ai]: what an AI evaluation needs beyond the energies."""

    model_config = ConfigDict(extra="forbid", frozen=True)
