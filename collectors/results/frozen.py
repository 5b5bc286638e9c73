"""Closed windows keep the result they closed with: computed once, stored, read back as is.

When a window stops its result is computed from the store and the site file the collector
loaded, and stored (collectors/storage/store_results.py) with the site file's SHA-256, the software
version, who stopped it and when, its report's plot series and the agents' key
fingerprints. Every later read of the window, its report included, returns that revision,
whatever batches arrive later or however the site file changes. Only an engineer's explicit
re-evaluation, with a reason, computes a new revision; the earlier ones stay readable.
Open windows stay live: computed on each read.
"""

from __future__ import annotations

import hashlib
import threading
import time
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import asdict
from pathlib import Path
from typing import Any, cast

import structlog

from dcmeter import __version__
from dcmeter.collectors.evaluation.evaluate import Kind, source_ids
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.reporting.report import Lang, ReportSeries, render_html, report_series
from dcmeter.collectors.results.scope import scoped
from dcmeter.collectors.results.windows import KINDS, window_result
from dcmeter.collectors.storage import audit
from dcmeter.collectors.storage.deadline import Deadline, TimedOut
from dcmeter.collectors.storage.records import Window
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.storage.store_results import Revision, RevisionInfo

log = structlog.get_logger("dcmeter.collector.results")

SOFTWARE = f"dcmeter {__version__}"
STOPPED = "window stopped"
# A window closed by a store from before schema version 7 has no stored result.
UPGRADED = "frozen on first read after upgrade"
# Closed by this version, but its result was not stored at the stop (the read stopped at
# its time limit, or the client left): frozen by the first read that completes.
NOT_AT_STOP = "frozen on first read: not computed when the window stopped"


def file_sha256(path: Path | str) -> str:
    """The SHA-256 (hex) of a file's bytes."""
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def unknown_sources(store: Store, site: Site) -> list[str]:
    """The source ids the site file names that the store has never seen: no series of
    them and no owner (bound or delivering) recorded, sorted."""
    named = {s for kind in KINDS for s in source_ids(cast(Kind, kind), site)}
    known = store.seen_sources() | set(store.owners.sources())
    return sorted(named - known)


def report_series_of(stored: Mapping[str, Any]) -> ReportSeries:
    """A ReportSeries from its stored dict (JSON arrays back to (t, v) pairs)."""
    def pts(xs: Iterable[Any]) -> list[tuple[float, float | None]]:
        return [(p[0], p[1]) for p in xs]

    return ReportSeries(
        total_kw=pts(stored.get("total_kw", ())), it_kw=pts(stored.get("it_kw", ())),
        pue=pts(stored.get("pue", ())),
        load={k: pts(v) for k, v in (stored.get("load") or {}).items()},
        step_s=float(stored.get("step_s", 0.0)),
        rule={k: float(v) for k, v in (stored.get("rule") or {}).items()},
    )


def report_of(rev: Revision, lang: Lang, format: str) -> str | dict[str, Any]:
    """A stored revision's report: the HTML page, or {"result", "series"} for JSON."""
    if format == "json":
        return {"result": rev.body(), "series": rev.series}
    return render_html(rev.body(), report_series_of(rev.series), lang, rev.fingerprints)


class Frozen:
    """Freeze, read and re-evaluate closed windows' results over one store and site file."""

    def __init__(
        self, store: Store, site: Site, site_sha256: str | None,
        fingerprints: Callable[[], Mapping[str, str]],
        clock: Callable[[], int] = time.time_ns,
    ) -> None:
        """`site_sha256`: of the site file bytes `site` was loaded from; `fingerprints`:
        the enrolled keys' fingerprints by agent id, now."""
        self.store, self.site, self.site_sha256 = store, site, site_sha256
        self.fingerprints, self.clock = fingerprints, clock
        self._locks: dict[int, threading.Lock] = {}
        self._guard = threading.Lock()

    @contextmanager
    def _held(self, wid: int, deadline: Deadline | None) -> Iterator[None]:
        """Hold window `wid`'s lock: one computation of a window's revision at a time."""
        with self._guard:
            lock = self._locks.setdefault(wid, threading.Lock())
        wait = -1.0 if deadline is None else max(deadline.at - deadline.clock(), 0.0)
        if not lock.acquire(timeout=wait):  # another request is computing it right now
            raise TimedOut(f"took longer than {deadline.seconds:g} s" if deadline else "")
        try:
            yield
        finally:
            lock.release()

    def compute(
        self, w: Window, reason: str, by: str | None, deadline: Deadline | None
    ) -> tuple[RevisionInfo, dict[str, Any], dict[str, Any], dict[str, str]]:
        """The window's result, report series and fingerprints as of now, not stored."""
        now = self.clock()
        result = window_result(self.store, self.site, w, now, deadline=deadline)
        series = report_series(self.store, scoped(self.site, w.kind, w.scope), w, now,
                               deadline=deadline)
        agents = ((result.get("quality") or {}).get("chain") or {}).get("agents") or {}
        prints = self.fingerprints()
        fps = {a: prints[a] for a in agents if a in prints}
        info = RevisionInfo(w.id, 0, self.clock(), self.site_sha256, SOFTWARE, reason, by)
        return info, result, asdict(series), fps

    def freeze(
        self, w: Window, reason: str, by: str | None, deadline: Deadline | None
    ) -> Revision:
        """Store revision 1 of a closed window unless it has one; return revision 1."""
        with self._held(w.id, deadline):
            stored = self.store.revision(w.id, 1)
            if stored is not None:
                return stored
            rev = self.store.add_revision(*self.compute(w, reason, by, deadline), first=True)
        if reason != STOPPED:  # a stop is on record in the window itself (closed_by)
            log.info("window result frozen", window=w.id, revision=rev.info.number,
                     reason=reason, site_sha256=self.site_sha256, software=SOFTWARE)
        return rev

    def read(self, w: Window, number: int | None, deadline: Deadline | None) -> Revision:
        """Revision `number` (latest if None) of closed window `w`, freezing it first if it
        has none yet; LookupError if there is no such revision."""
        assert w.end_ns is not None
        rev = self.store.revision(w.id, number)
        if rev is None and not self.store.revisions(w.id):
            why = UPGRADED if w.closed_ns is None else NOT_AT_STOP
            first = self.freeze(w, why, None, deadline)
            rev = first if number in (None, 1) else None
        if rev is None:
            last = self.store.revision(w.id)
            raise LookupError(
                f"window {w.id} has no revision {number}"
                f" (revisions 1 to {last.info.number if last else 0})"
            )
        return rev

    def reevaluate(
        self, w: Window, reason: str, by: str, deadline: Deadline | None
    ) -> Revision:
        """Compute closed window `w` again, from the store and site file as they are now,
        and store it as a new revision beside the earlier ones."""
        self.read(w, None, deadline)  # a window without revision 1 gets it first
        with self._held(w.id, deadline):
            rev = self.store.add_revision(*self.compute(w, reason, by, deadline))
        audit.window_reevaluated(w.id, rev.info.number, reason, by, self.site_sha256, SOFTWARE)
        return rev
