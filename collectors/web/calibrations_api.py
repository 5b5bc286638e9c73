"""The calibrations routes (issue 18, seed 004): a plan opens a calibration, readings are
posted against its points, and closing it freezes the record its certificate prints."""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Depends, HTTPException, Request
from fastapi import Path as PathParam
from fastapi.responses import HTMLResponse, JSONResponse, Response
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

from dcmeter.collectors.evaluation.calibration_plan import Plan
from dcmeter.collectors.evaluation.int64 import INT64_MAX
from dcmeter.collectors.evaluation.jsonl import parse_rfc3339, rfc3339
from dcmeter.collectors.reporting.certificate import render_certificate
from dcmeter.collectors.reporting.report_print import render_pdf, with_policy
from dcmeter.collectors.results.calibrations import (
    build_record,
    calibration_record,
    quantity_error,
    summary,
)
from dcmeter.collectors.storage import audit
from dcmeter.collectors.storage.calibration_table import StoredCalibration
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.auth import Auth, Principal

CalibrationId = Annotated[int, PathParam(ge=1, le=INT64_MAX, description="calibration id")]


class ReadingBody(BaseModel):
    """Body of POST /api/v1/calibrations/{id}/readings: one repetition of one point."""

    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)

    point: str = Field(min_length=1, max_length=100, description="a point label of the plan")
    repetition: int = Field(ge=1, le=100)
    start: AwareDatetime = Field(description="the dwell's start (RFC 3339 with an offset)")
    end: AwareDatetime = Field(description="the dwell's end (RFC 3339 with an offset)")
    reference: float | None = Field(
        default=None, description="the reference's mean over the dwell, quantity unit (a"
        " reference read from a series: absent)")
    indicated: float | None = Field(
        default=None, description="the instrument's mean over the dwell, quantity unit (an"
        " instrument read from a series or a run: absent)")
    run: int | None = Field(default=None, ge=1, le=INT64_MAX,
                            description="the AI window's run (instrument kind run)")
    detail: dict[str, Any] = Field(default_factory=dict, description="the tool's summary")


def _ns(dt: AwareDatetime) -> int:
    return int(parse_rfc3339(dt.isoformat()) * 1e9)


def reading_error(plan: Plan, body: ReadingBody) -> str | None:
    """Why `body` does not fit `plan` (a 422), or None."""
    labels = [p.label for p in plan.points]
    if body.point not in labels:
        return f"point {body.point!r} is not in the plan; its points: {', '.join(labels)}"
    if body.repetition > plan.calibration.repetitions:
        return (f"repetition {body.repetition} is beyond the plan's"
                f" {plan.calibration.repetitions} repetitions")
    if _ns(body.end) <= _ns(body.start):
        return f"end {body.end.isoformat()} is not after start {body.start.isoformat()}"
    ins, ref = plan.instrument.kind, plan.reference.kind
    if ins in ("series", "run") and body.indicated is not None:
        return f"indicated is read from the instrument's {ins}: leave it out"
    if ref == "series" and body.reference is not None:
        return "reference is read from the reference's series: leave it out"
    if ins == "run" and body.run is None:
        return f"the instrument is AI window {plan.instrument.window}'s runs: give run (its id)"
    return None


def calibrations_router(
    store: Store, auth: Auth, clock: Callable[[], int] = time.time_ns,
    timezone: str | None = None,
) -> APIRouter:
    """The calibrations routes: engineer to write, reader to read; certificates print their
    times in `timezone` (the site file's, IANA; None: Asia/Shanghai)."""
    router = APIRouter()
    read, write = Depends(auth.require("reader")), Depends(auth.require("engineer"))

    def _get(cid: int) -> StoredCalibration:
        found = store.calibration(cid)
        if found is None:
            raise HTTPException(404, f"no calibration {cid}")
        return found

    @router.post("/api/v1/calibrations", status_code=201)
    def create(body: Plan, request: Request, who: Principal = write) -> dict[str, Any]:
        """Open a calibration from its plan (the TOML file `dcmeter calibrate` reads, as
        JSON); answers its record, with its id."""
        if why := quantity_error(body.calibration.quantity):
            raise HTTPException(422, why)
        stored = store.add_calibration(body.model_dump(mode="json"), who.name, clock())
        audit.calibration_created(stored.id, body.calibration.quantity, who.name,
                                  audit.client_of(request.scope))
        return calibration_record(store, stored)

    @router.get("/api/v1/calibrations", dependencies=[read])
    def list_calibrations() -> list[dict[str, Any]]:
        """The calibrations, newest first: id, state, quantity, dates and statement."""
        return [summary(c) for c in store.calibrations()]

    @router.get("/api/v1/calibrations/{cid}", dependencies=[read])
    def get_calibration(cid: CalibrationId) -> dict[str, Any]:
        """A calibration's record: computed on each read while open, as frozen once closed."""
        return calibration_record(store, _get(cid))

    @router.post("/api/v1/calibrations/{cid}/readings", status_code=201,
                 responses={200: {"description": "the same reading again"},
                            409: {"description": "the repetition is recorded with other"
                                  " figures"},
                            422: {"description": "the reading does not fit the plan, or the"
                                  " calibration is closed"}})
    def post_reading(
        cid: CalibrationId, body: ReadingBody, request: Request, who: Principal = write
    ) -> JSONResponse:
        """Record one repetition of one point (201; 200 for the same again; 409 if it
        differs)."""
        stored = _get(cid)
        if stored.closed_ns is not None:
            raise HTTPException(422, f"calibration {cid} is closed: its record is frozen")
        if why := reading_error(Plan.model_validate(stored.plan), body):
            raise HTTPException(422, why)
        start, end = _ns(body.start), _ns(body.end)
        text = {**body.model_dump(mode="json"), "start": rfc3339(start / 1e9),
                "end": rfc3339(end / 1e9)}
        status, found = store.add_reading(cid, body.point, body.repetition, start, end, text,
                                          clock(), who.name)
        audit.calibration_reading(cid, body.point, body.repetition, status, who.name,
                                  audit.client_of(request.scope))
        if status == "conflict":
            raise HTTPException(409, f"repetition {body.repetition} of point {body.point!r} is"
                                f" already recorded in calibration {cid} with other figures")
        return JSONResponse({"status": status, **found.body},
                            status_code=201 if status == "stored" else 200)

    @router.post("/api/v1/calibrations/{cid}/close",
                 responses={409: {"description": "already closed"}})
    def close(cid: CalibrationId, request: Request, who: Principal = write) -> dict[str, Any]:
        """Close a calibration: its record is computed once more and frozen."""
        stored = _get(cid)
        if stored.closed_ns is not None:
            raise HTTPException(409, f"calibration {cid} is already closed")
        now = clock()
        record = build_record(store, stored, Plan.model_validate(stored.plan),
                              store.readings(cid), closed=(now, who.name))
        if not store.close_calibration(cid, record, who.name, now):
            raise HTTPException(409, f"calibration {cid} is already closed")
        audit.calibration_closed(cid, record["statement"]["result"], who.name,
                                 audit.client_of(request.scope))
        return calibration_record(store, _get(cid))

    @router.get("/api/v1/calibrations/{cid}/certificate", dependencies=[read],
                response_model=None,
                responses={200: {"content": {"text/html": {}, "application/pdf": {}}}})
    def certificate(
        cid: CalibrationId, lang: Literal["en", "zh"] = "en",
        format: Literal["html", "pdf"] = "html",
    ) -> Response:
        """The calibration certificate (HTML, or PDF printed by headless Chromium)."""
        record = calibration_record(store, _get(cid))
        html = render_certificate(record, lang, timezone)
        if format == "html":
            return HTMLResponse(html)
        # A sync route: FastAPI runs it in a worker thread, off the event loop.
        with tempfile.TemporaryDirectory(prefix="dcmeter-cert-") as tmp:
            out = Path(tmp) / "certificate.pdf"
            render_pdf(with_policy(html), out)
            pdf = out.read_bytes()
        return Response(pdf, media_type="application/pdf", headers={
            "Content-Disposition": f'attachment; filename="calibration-{cid}-{lang}.pdf"'})

    return router
