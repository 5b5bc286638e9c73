"""The collector's HTTP API (FastAPI): batches in, windows and their results out."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import asdict
from datetime import datetime
from functools import partial
from typing import Annotated, Any, Literal

import structlog
from fastapi import Depends, FastAPI, HTTPException, Path, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse
from pydantic import BaseModel, ConfigDict, Field

from dcmeter.agent.pubkey import fingerprint
from dcmeter.base.ratelimit import LogLimiter
from dcmeter.collectors.evaluation.ai_runs import Run
from dcmeter.collectors.evaluation.int64 import INT64_MAX, StoreTime
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339, rfc3339
from dcmeter.collectors.evaluation.site import Site
from dcmeter.collectors.intake.ingest import Ingest, Outcome
from dcmeter.collectors.reporting.report import render_html, report_series
from dcmeter.collectors.results.frozen import STOPPED, Frozen, report_of
from dcmeter.collectors.results.scope import scope_error, scoped
from dcmeter.collectors.results.windows import SUPPORTED, window_result
from dcmeter.collectors.storage import audit
from dcmeter.collectors.storage.deadline import Abandoned, Deadline
from dcmeter.collectors.storage.records import StoredRun, Window
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.storage.store_results import Revision
from dcmeter.collectors.web.auth import Auth, Principal
from dcmeter.collectors.web.calibrations_api import calibrations_router
from dcmeter.collectors.web.console.routes import WindowOps, console_router
from dcmeter.collectors.web.docs_ui import docs_router
from dcmeter.collectors.web.health import HealthCounts
from dcmeter.collectors.web.limits import AppLimits, Guard
from dcmeter.collectors.web.metrics import add_metrics
from dcmeter.collectors.web.offloop import Reads
from dcmeter.collectors.web.result_schema import (
    ResultRevision,
    RevisionNumber,
    WindowReevaluate,
    WindowResult,
)
from dcmeter.collectors.web.sources_api import sources_router

MSGPACK = "application/x-msgpack"
log = structlog.get_logger("dcmeter.collector")
# A window id in a route: beyond a 64-bit column it is a 422 naming the bound, not a 500.
WindowId = Annotated[int, Path(ge=1, le=INT64_MAX, description="window id")]


class WindowOpen(BaseModel):
    """Body of POST /api/v1/windows."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["infrastructure", "general", "ai"]
    start: StoreTime | None = None
    note: str | None = None
    scope: list[str] | None = Field(
        default=None, min_length=1,
        description="source ids of the site file the window covers (general, ai; see"
        " collectors/results/scope.py); absent: the whole site",
    )


class WindowStop(BaseModel):
    """Body of POST /api/v1/windows/{id}/stop (optional)."""

    model_config = ConfigDict(extra="forbid")

    end: StoreTime | None = None


def _ns(dt: datetime) -> int:
    return int(parse_rfc3339(dt.isoformat()) * 1e9)


def _pair(out: Outcome) -> tuple[dict[str, Any], int]:
    return out.body, out.status


def _summary(w: Window, revision: int | None = None) -> dict[str, Any]:
    return {
        "id": w.id,
        "kind": w.kind,
        "state": "open" if w.end_ns is None else "closed",
        "start": rfc3339(w.start_ns / 1e9),
        "end": None if w.end_ns is None else rfc3339(w.end_ns / 1e9),
        "note": w.note,
        "opened_by": w.opened_by,
        "closed_by": w.closed_by,
        "scope": None if w.scope is None else list(w.scope),
        "revision": revision,  # the latest stored revision of its result, if closed
    }


def _run(r: StoredRun) -> dict[str, Any]:
    return {"id": r.id, "window": r.window_id, **r.body}


def _choice(name: str, value: str | None, valid: tuple[str, ...]) -> str | None:
    if value is not None and value not in valid:
        raise HTTPException(422, f"{name} {value!r} is not one of {', '.join(valid)}")
    return value


def _time_ns(name: str, value: str | None) -> int | None:
    if value is None:
        return None
    try:
        return int(parse_rfc3339(value) * 1e9)
    except ValueError:
        raise HTTPException(
            422, f"{name} {value!r} is not an RFC 3339 time with a UTC offset,"
            " e.g. 2026-01-01T00:00:00Z"
        ) from None


def window_filter(
    kind: str | None = Query(None, description="infrastructure, general or ai"),
    state: str | None = Query(None, description="open or closed"),
    since: str | None = Query(None, description="RFC 3339: windows not ended before it"),
    until: str | None = Query(None, description="RFC 3339: windows started at or before it"),
) -> Callable[[Window], bool]:
    """The filters of GET /api/v1/windows: 422 naming the bad parameter and what is valid."""
    k = _choice("kind", kind, ("infrastructure", "general", "ai"))
    st = _choice("state", state, ("open", "closed"))
    t0, t1 = _time_ns("since", since), _time_ns("until", until)

    def keep(w: Window) -> bool:
        closed = w.end_ns is not None
        return (
            (k is None or w.kind == k)
            and (st is None or closed == (st == "closed"))
            and (t0 is None or w.end_ns is None or w.end_ns >= t0)
            and (t1 is None or w.start_ns <= t1)
        )

    return keep


def create_app(
    store: Store, ingest: Ingest, site: Site, clock: Callable[[], int] = time.time_ns,
    auth: bool = True, limits: AppLimits = AppLimits(),  # noqa: B008 (frozen)
    site_sha256: str | None = None,
) -> FastAPI:
    """Build the API over an open store, an ingest pipeline and the site's evaluation rules.

    With `auth` the windows routes need a bearer token (collectors/web/auth.py): GET a reader's
    or an engineer's, POST an engineer's. `limits`: bodies, reads and open windows
    (docs/security.md). `site_sha256`: of the site file bytes `site` was loaded from, kept
    with every frozen result (collectors/results/frozen.py).
    """
    # Refused requests' audit lines: one per (reason, client) a minute; the rest counted,
    # and the counts not yet written are logged at stop.
    quiet = LogLimiter()

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        yield
        audit.refused_left_out(quiet)

    # /docs is served whole by the collector (docs_ui.py: no CDN); ReDoc is off.
    app = FastAPI(title="dcmeter collector", version="1", lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.include_router(docs_router(app.title, app.openapi_url or "/openapi.json"))
    tokens = Auth(store, auth)
    read, write = Depends(tokens.require("reader")), Depends(tokens.require("engineer"))
    # Token, size and time of a request checked from its head, before a body is read.
    app.add_middleware(Guard, auth=tokens, max_body=limits.max_body_bytes,
                       body_timeout_s=limits.body_timeout_s, quiet=quiet)
    reads = Reads(limits.read_timeout_s)
    counts = HealthCounts(store)
    frozen = Frozen(store, site, site_sha256,
                    lambda: {agent: fingerprint(key) for agent, key in ingest.keyring.items()},
                    clock)
    # Ingest runs off the event loop, one batch at a time (the order batches are checked in
    # is the order they arrive in), in its own thread: it never takes FastAPI's workers.
    ingest_thread = ThreadPoolExecutor(1, thread_name_prefix="dcmeter-ingest")

    async def ingested(work: Callable[[], Outcome]) -> JSONResponse:
        out = await asyncio.get_running_loop().run_in_executor(ingest_thread, work)
        counts.note(out)
        return JSONResponse(*_pair(out))

    @app.post(
        "/api/v1/batches",
        summary="Receive a signed batch",
        responses={
            400: {"description": "malformed envelope or body"},
            401: {"description": "agent not enrolled"},
            403: {"description": "bad signature"},
            409: {"description": "seq already stored with other content"},
            413: {"description": "batch over the size limit"},
            415: {"description": f"content-type is not {MSGPACK}"},
        },
        openapi_extra={"requestBody": {"required": True, "content": {
            MSGPACK: {"schema": {"type": "string", "format": "binary"}}}}},
    )
    async def post_batch(request: Request) -> JSONResponse:
        """Receive one signed batch (application/x-msgpack)."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > ingest.max_bytes:
            return await ingested(lambda: ingest.too_large(int(length)))
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if ctype != MSGPACK:
            raise HTTPException(415, f"content-type must be {MSGPACK}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            chunks.append(chunk)
            size += len(chunk)
            if size > ingest.max_bytes:
                return await ingested(partial(ingest.too_large, size))
        raw = b"".join(chunks)
        return await ingested(lambda: ingest(raw))

    def open_(kind: str, start: datetime | None, note: str | None, scope: list[str] | None,
              who: Principal, client: str | None) -> dict[str, Any]:
        if kind not in SUPPORTED:
            raise HTTPException(
                422, f"window kind {kind!r} is not evaluated yet; supported: {SUPPORTED}"
            )
        if start is not None and start.tzinfo is None:
            raise HTTPException(422, "start must carry a UTC offset, e.g. 2026-01-01T00:00:00Z")
        if scope is not None and (why := scope_error(kind, site, scope)):
            raise HTTPException(422, why)
        open_now = sum(store.open_window_totals().values())
        if open_now >= limits.max_open_windows:
            raise HTTPException(
                409, f"{open_now} windows are open, the site's limit"
                f" (collector.max_open_windows = {limits.max_open_windows}): stop one first"
                " (`dcmeter window stop ID`) or raise the limit",
            )
        now = clock()
        w = store.open_window(kind, _ns(start) if start else now, note, now, who.name, scope)
        audit.window_opened(w, client)
        return _summary(w)

    @app.post("/api/v1/windows", status_code=201)
    def open_window(body: WindowOpen, request: Request, who: Principal = write) -> dict[str, Any]:
        """Open a measurement window, now or at a given start time, over the whole site or
        a scope of its sources; the window records the name of the token that opened it."""
        return open_(body.kind, body.start, body.note, body.scope, who,
                     audit.client_of(request.scope))

    @app.get("/api/v1/windows", dependencies=[read])
    def list_windows(
        keep: Callable[[Window], bool] = Depends(window_filter),  # noqa: B008
    ) -> list[dict[str, Any]]:
        """The windows, newest first, filtered by kind, state and time (overlapping a span)."""
        latest = store.latest_revisions()
        return [_summary(w, latest.get(w.id)) for w in store.windows() if keep(w)]

    def _get(wid: int) -> Window:
        w = store.window(wid)
        if w is None:
            raise HTTPException(404, f"no window {wid}")
        return w

    def _frozen(w: Window, number: int | None, d: Deadline) -> Revision:
        try:
            return frozen.read(w, number, d)
        except LookupError as exc:
            raise HTTPException(404, str(exc)) from None

    def _no_revision(wid: int, number: int | None) -> None:
        if number is not None:
            raise HTTPException(404, f"window {wid} is open: its result is computed on each"
                                " read and has no stored revision")

    def stop_(wid: int, end_at: int | None, who: Principal, client: str | None,
              d: Deadline) -> dict[str, Any]:
        w, now = _get(wid), clock()
        end = now if end_at is None else end_at
        if w.end_ns is not None:
            raise HTTPException(409, f"window {wid} is already closed")
        if end <= w.start_ns:
            raise HTTPException(422, "end must be after the window's start")
        if not store.close_window(wid, end, who.name, now):
            raise HTTPException(409, f"window {wid} is already closed")
        closed = _get(wid)
        audit.window_stopped(closed, client)
        try:
            rev = frozen.freeze(closed, STOPPED, who.name, d)
        except Abandoned as exc:  # closed all the same: the first read freezes it
            log.warning("window result not frozen at stop", window=wid, why=str(exc))
            return _summary(closed)
        return _summary(closed, rev.info.number)

    @app.post("/api/v1/windows/{wid}/stop")
    async def stop_window(
        wid: WindowId, request: Request, body: WindowStop | None = None, who: Principal = write
    ) -> dict[str, Any]:
        """Close an open window, now or at a given end time, and freeze its result: computed
        once and stored as revision 1, which every later read returns."""
        end_at = _ns(body.end) if body and body.end else None
        client = audit.client_of(request.scope)

        def work(d: Deadline) -> dict[str, Any]:
            return stop_(wid, end_at, who, client, d)

        return await reads.run(request, work, f"the stop of window {wid}")

    def result_(wid: int, revision: int | None, d: Deadline) -> dict[str, Any]:
        """A window's result: while open, as of now; closed, the stored revision."""
        w = _get(wid)
        if w.end_ns is not None:
            return _frozen(w, revision, d).body()
        _no_revision(wid, revision)
        return window_result(store, site, w, clock(), deadline=d)

    def report_(wid: int, lang: Literal["en", "zh"], format: str, revision: int | None,
                d: Deadline) -> str | dict[str, Any]:
        """A window's report: the HTML text, or {"result", "series"} (format "json")."""
        w, now = _get(wid), clock()
        if w.end_ns is not None:
            return report_of(_frozen(w, revision, d), lang, format)
        _no_revision(wid, revision)
        result = window_result(store, site, w, now, deadline=d)
        d.check()
        series = report_series(store, scoped(site, w.kind, w.scope), w, now, deadline=d)
        if format == "json":
            return {"result": result, "series": asdict(series)}
        prints = {agent: fingerprint(key) for agent, key in ingest.keyring.items()}
        return render_html(result, series, lang, prints)

    @app.get("/api/v1/windows/{wid}", dependencies=[read],
             responses={200: {"model": WindowResult}, 404: {"description": "no such window"
                                                             " or revision"}})
    async def get_window(
        wid: WindowId, request: Request, revision: RevisionNumber = None
    ) -> dict[str, Any]:
        """The window's result: while open, as of now; once closed, the stored revision
        (the latest, or `?revision=N`), with its `revision` block."""
        def work(d: Deadline) -> dict[str, Any]:
            return result_(wid, revision, d)

        return await reads.run(request, work, f"the result of window {wid}")

    @app.get("/api/v1/windows/{wid}/report", dependencies=[read], response_model=None)
    async def get_report(
        wid: WindowId, request: Request, lang: Literal["en", "zh"] = "en",
        format: Literal["html", "json"] = "html", revision: RevisionNumber = None,
    ) -> HTMLResponse | dict[str, Any]:
        """The window's evaluation report (docs/report.md): a self-contained HTML page, or its
        data as JSON (the result and the plot series); a closed window's from its stored
        revision (the latest, or `?revision=N`)."""
        def work(d: Deadline) -> HTMLResponse | dict[str, Any]:
            out = report_(wid, lang, format, revision, d)
            return out if isinstance(out, dict) else HTMLResponse(out)

        return await reads.run(request, work, f"the report of window {wid}")

    @app.get("/api/v1/windows/{wid}/revisions", dependencies=[read],
             responses={200: {"model": list[ResultRevision]}})
    async def list_revisions(wid: WindowId, request: Request) -> list[dict[str, Any]]:
        """The stored revisions of a closed window's result, oldest first (none while open):
        number, when computed, the site file's SHA-256, the software, the reason, by whom."""
        def work(d: Deadline) -> list[dict[str, Any]]:
            w = _get(wid)
            if w.end_ns is not None:
                frozen.read(w, None, d)  # a window closed before the upgrade: frozen now
            return [r.block() for r in store.revisions(wid)]

        return await reads.run(request, work, f"the revisions of window {wid}")

    @app.post("/api/v1/windows/{wid}/reevaluate", status_code=201,
              responses={201: {"model": WindowResult},
                         409: {"description": "the window is open"}})
    async def reevaluate(
        wid: WindowId, body: WindowReevaluate, request: Request, who: Principal = write
    ) -> dict[str, Any]:
        """Compute a closed window's result again, from the samples and the site file as they
        are now, and store it as a new revision beside the earlier ones (engineer; a reason
        is required). Answers the new revision's result."""
        def work(d: Deadline) -> dict[str, Any]:
            w = _get(wid)
            if w.end_ns is None:
                raise HTTPException(409, f"window {wid} is open: its result is computed on each"
                                    " read; stop it first")
            return frozen.reevaluate(w, body.reason, who.name, d).body()

        return await reads.run(request, work, f"the re-evaluation of window {wid}")

    @app.post("/api/v1/windows/{wid}/runs", status_code=201)
    def post_run(
        wid: WindowId, run: Run, request: Request, who: Principal = write
    ) -> JSONResponse:
        """Record one run of an AI window (201; 200 for the same run again; 409 if it differs)."""
        w = _get(wid)
        if w.kind != "ai":
            raise HTTPException(422, f"window {wid} is {w.kind!r}: runs belong to ai windows")
        start, end = int(run.start_s * 1e9), int(run.end_s * 1e9)
        if start < w.start_ns:
            raise HTTPException(
                422, f"run starts before window {wid} ({rfc3339(w.start_ns / 1e9)})"
            )
        if w.end_ns is not None and end > w.end_ns:
            raise HTTPException(422, f"run ends after window {wid} ({rfc3339(w.end_ns / 1e9)})")
        status, stored = store.add_run(wid, run.to_json(), start, end, clock())
        audit.run_posted(wid, run, status, who.name, audit.client_of(request.scope), stored.id)
        if status == "conflict":
            raise HTTPException(
                409,
                f"repetition {run.repetition} of {run.phase} {run.key[1]} is already recorded"
                f" in window {wid} (run {stored.id}) with other figures",
            )
        code = 201 if status == "stored" else 200
        return JSONResponse({"status": status, **_run(stored)}, status_code=code)

    @app.get("/api/v1/windows/{wid}/runs", dependencies=[read])
    def list_runs(wid: WindowId) -> list[dict[str, Any]]:
        """The runs recorded in a window, by start time."""
        _get(wid)
        return [_run(r) for r in store.runs(wid)]

    @app.get("/api/v1/health")
    async def health() -> dict[str, Any]:
        """Liveness and counts, from memory (never waits for the store): batches and samples
        stored, batches refused, reads stopped at their time limit or when the client left."""
        return {"status": "ok", **counts.body(), "reads_timed_out": reads.timed_out,
                "reads_abandoned": reads.abandoned}

    app.include_router(sources_router(store, tokens, lambda: ingest.keyring, clock))
    app.include_router(calibrations_router(store, tokens, clock, site.site.timezone))
    add_metrics(app, store, site, clock, reads)
    # The field console at / (collectors/web/console/): the same window work as the API.
    ops = WindowOps(
        open_=lambda kind, note, scope, who, client: open_(kind, None, note, scope, who, client),
        stop=lambda wid, who, client, d: stop_(wid, None, who, client, d),
        result=lambda wid, d: result_(wid, None, d),
        report=lambda wid, lang, format, d: report_(
            wid, "zh" if lang == "zh" else "en", format, None, d),
    )
    app.include_router(console_router(store, site, tokens, reads, ops, clock))
    return app
