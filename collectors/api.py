"""The collector's HTTP API (FastAPI): batches in, windows and their results out."""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

from fastapi import FastAPI, HTTPException, Request
from fastapi.responses import JSONResponse
from pydantic import BaseModel, ConfigDict

from collectors.evaluation.ai_runs import Run
from collectors.evaluation.jsonl import parse_rfc3339, rfc3339
from collectors.evaluation.site import Site
from collectors.ingest import Ingest, Outcome
from collectors.store import Store, StoredRun, Window
from collectors.windows import SUPPORTED, window_result

MSGPACK = "application/x-msgpack"


class WindowOpen(BaseModel):
    """Body of POST /api/v1/windows."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["infrastructure", "general", "ai"]
    start: datetime | None = None
    note: str | None = None


class WindowStop(BaseModel):
    """Body of POST /api/v1/windows/{id}/stop (optional)."""

    model_config = ConfigDict(extra="forbid")

    end: datetime | None = None


def _ns(dt: datetime) -> int:
    return int(parse_rfc3339(dt.isoformat()) * 1e9)


def _pair(out: Outcome) -> tuple[dict[str, Any], int]:
    return out.body, out.status


def _summary(w: Window) -> dict[str, Any]:
    return {
        "id": w.id,
        "kind": w.kind,
        "state": "open" if w.end_ns is None else "closed",
        "start": rfc3339(w.start_ns / 1e9),
        "end": None if w.end_ns is None else rfc3339(w.end_ns / 1e9),
        "note": w.note,
    }


def _run(r: StoredRun) -> dict[str, Any]:
    return {"id": r.id, "window": r.window_id, **r.body}


def create_app(
    store: Store, ingest: Ingest, site: Site, clock: Callable[[], int] = time.time_ns
) -> FastAPI:
    """Build the API over an open store, an ingest pipeline and the site's evaluation rules."""
    app = FastAPI(title="dcmeter collector", version="1")

    @app.post("/api/v1/batches")
    async def post_batch(request: Request) -> JSONResponse:
        """Receive one signed batch (application/x-msgpack)."""
        length = request.headers.get("content-length")
        if length is not None and length.isdigit() and int(length) > ingest.max_bytes:
            return JSONResponse(*_pair(ingest.too_large(int(length))))
        ctype = request.headers.get("content-type", "").split(";")[0].strip()
        if ctype != MSGPACK:
            raise HTTPException(415, f"content-type must be {MSGPACK}")
        chunks: list[bytes] = []
        size = 0
        async for chunk in request.stream():
            chunks.append(chunk)
            size += len(chunk)
            if size > ingest.max_bytes:
                return JSONResponse(*_pair(ingest.too_large(size)))
        out = ingest(b"".join(chunks))
        return JSONResponse(out.body, status_code=out.status)

    @app.post("/api/v1/windows", status_code=201)
    def open_window(body: WindowOpen) -> dict[str, Any]:
        """Open a measurement window, now or at a given start time."""
        if body.kind not in SUPPORTED:
            raise HTTPException(
                422, f"window kind {body.kind!r} is not evaluated yet; supported: {SUPPORTED}"
            )
        if body.start is not None and body.start.tzinfo is None:
            raise HTTPException(422, "start must carry a UTC offset, e.g. 2026-01-01T00:00:00Z")
        now = clock()
        start = _ns(body.start) if body.start else now
        return _summary(store.open_window(body.kind, start, body.note, now))

    @app.get("/api/v1/windows")
    def list_windows() -> list[dict[str, Any]]:
        """Every window, newest first."""
        return [_summary(w) for w in store.windows()]

    def _get(wid: int) -> Window:
        w = store.window(wid)
        if w is None:
            raise HTTPException(404, f"no window {wid}")
        return w

    @app.post("/api/v1/windows/{wid}/stop")
    def stop_window(wid: int, body: WindowStop | None = None) -> dict[str, Any]:
        """Close an open window, now or at a given end time."""
        w = _get(wid)
        end = _ns(body.end) if body and body.end else clock()
        if w.end_ns is not None:
            raise HTTPException(409, f"window {wid} is already closed")
        if end <= w.start_ns:
            raise HTTPException(422, "end must be after the window's start")
        if not store.close_window(wid, end):
            raise HTTPException(409, f"window {wid} is already closed")
        return _summary(_get(wid))

    @app.get("/api/v1/windows/{wid}")
    def get_window(wid: int) -> dict[str, Any]:
        """The window's current result (as of now while it is open)."""
        return window_result(store, site, _get(wid), clock())

    @app.post("/api/v1/windows/{wid}/runs", status_code=201)
    def post_run(wid: int, run: Run) -> JSONResponse:
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
        if status == "conflict":
            raise HTTPException(
                409,
                f"repetition {run.repetition} of {run.phase} {run.key[1]} is already recorded"
                f" in window {wid} (run {stored.id}) with other figures",
            )
        code = 201 if status == "stored" else 200
        return JSONResponse({"status": status, **_run(stored)}, status_code=code)

    @app.get("/api/v1/windows/{wid}/runs")
    def list_runs(wid: int) -> list[dict[str, Any]]:
        """The runs recorded in a window, by start time."""
        _get(wid)
        return [_run(r) for r in store.runs(wid)]

    @app.get("/api/v1/health")
    def health() -> dict[str, Any]:
        """Liveness and store counts."""
        return {"status": "ok", **store.counts()}

    return app
