"""The buffer's ids of sources and metrics, found by identity instead of a JSON key per reading.

The buffer interns each source and each metric (spec and labels) under a JSON key
(agent/buffer.py `_source_key`, `_metric_key`) and stores the key's small integer id with
every sample. Making the JSON per reading was a third of a tick's commit CPU (3,000
readings: two `json.dumps` each); a tick's readings repeat the same few hundred identities.
This cache finds the id by the identity the sources already keep: the same `SourceInfo`
object (a source replaces its `info`, never changes it in place: it is frozen), the same
`MetricSpec` object and equal labels. A miss makes the JSON key and interns it as before, so
the stored keys and ids, and thus the batches, are exactly those of the uncached path.
"""

from __future__ import annotations

from collections.abc import Callable

from dcmeter.agent.samples import MetricSpec, Reading, SourceInfo

# Entries kept before the cache starts over: ~10x a large agent's identities (1,000 targets
# of ~11 series). A source that made a new MetricSpec per reading only costs misses.
MAX_ENTRIES = 100_000

Labels = tuple[tuple[str, str], ...]


class KeyCache:
    """Buffer ids by object identity; the objects are held, so their ids are not reused."""

    def __init__(self) -> None:
        self._sources: dict[int, tuple[SourceInfo, int]] = {}
        # (id of the spec, labels) -> (the spec, id); read directly by Buffer.append.
        self.metrics: dict[tuple[int, Labels], tuple[MetricSpec, int]] = {}

    def source(self, info: SourceInfo, intern: Callable[[SourceInfo], int]) -> int:
        """The id of `info`; `intern` makes it on a miss."""
        hit = self._sources.get(id(info))
        if hit is not None and hit[0] is info:
            return hit[1]
        idx = intern(info)
        if len(self._sources) >= MAX_ENTRIES:
            self._sources.clear()
        self._sources[id(info)] = (info, idx)
        return idx

    def metric(self, r: Reading, intern: Callable[[Reading], int]) -> int:
        """The id of the reading's metric and labels; `intern` makes it on a miss. Labels
        are compared by value in their order (another order is another entry, same id)."""
        spec = r.metric
        key = (id(spec), tuple(r.labels.items()))
        hit = self.metrics.get(key)
        if hit is not None and hit[0] is spec:
            return hit[1]
        idx = intern(r)
        if len(self.metrics) >= MAX_ENTRIES:
            self.metrics.clear()
        self.metrics[key] = (spec, idx)
        return idx
