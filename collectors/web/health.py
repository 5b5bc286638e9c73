"""The figures of GET /api/v1/health, kept in memory: the route never touches the store.

Unauthenticated and polled by monitors, /health must answer at once whatever the store is
doing: counting the samples table under the store's lock took as long as the table was big,
and waited for every ingest. The totals are read once from the store (per-batch sums, not a
scan of the samples) and then follow the batches this process stores and refuses.
"""

from __future__ import annotations

import threading
from typing import Any

from dcmeter.collectors.intake.ingest import Outcome
from dcmeter.collectors.storage.store import Store


class HealthCounts:
    """Batches and samples stored and batches refused, as of the last answer given."""

    def __init__(self, store: Store) -> None:
        """Start from what `store` holds."""
        rows, _ = store.agent_totals(0)
        refused, _ = store.rejection_totals(0)
        self._lock = threading.Lock()  # ingest answers come from a worker thread
        self.batches = sum(int(r["batches"]) for r in rows)
        self.samples = sum(int(r["samples"] or 0) for r in rows)
        self.rejected = sum(n for _, _, n in refused)

    def note(self, out: Outcome) -> None:
        """Count one answered batch: stored, or refused (a duplicate adds nothing)."""
        with self._lock:
            if out.body.get("status") == "stored":
                self.batches += 1
                self.samples += int(out.body.get("samples", 0))
            elif out.body.get("status") == "rejected":
                self.rejected += 1

    def body(self) -> dict[str, Any]:
        """The counts for the health answer."""
        with self._lock:
            return {"batches": self.batches, "samples": self.samples, "rejected": self.rejected}
