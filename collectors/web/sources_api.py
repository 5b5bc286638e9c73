"""The sources routes: who owns each source, and the engineer's action that changes it."""

from __future__ import annotations

import time
from collections.abc import Callable, Collection
from datetime import datetime
from typing import Any

from fastapi import APIRouter, Depends, HTTPException, Request
from pydantic import BaseModel, ConfigDict, Field

from dcmeter.collectors.evaluation.jsonl import parse_rfc3339, rfc3339
from dcmeter.collectors.storage import audit
from dcmeter.collectors.storage.ownership import Span
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.auth import Auth, Principal


class OwnerChange(BaseModel):
    """Body of POST /api/v1/sources/{source}/owner."""

    model_config = ConfigDict(extra="forbid")

    agent: str = Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
    start: datetime | None = Field(
        default=None, alias="from",
        description="sample time from which the agent owns the source (RFC 3339 with an"
        " offset); absent: now. Ignored when confirming the current owner.",
    )
    reason: str = Field(min_length=1, max_length=500)


def _time(ns: int | None) -> str | None:
    return None if ns is None or ns <= 0 else rfc3339(ns / 1e9)


def _span(s: Span) -> dict[str, Any]:
    out = s.as_json()
    out["from"], out["until"] = _time(out.pop("from_ns")), _time(out.pop("until_ns"))
    out["added"] = _time(s.added_ns)
    return out


def _entry(source: str, spans: list[Span]) -> dict[str, Any]:
    now = spans[-1]
    return {"source": source, "owner": now.agent, "via": now.via,
            "confirmed": _span(now)["confirmed"], "since": _time(now.from_ns),
            "history": [_span(s) for s in spans]}


def sources_router(
    store: Store, auth: Auth, agents: Callable[[], Collection[str]],
    clock: Callable[[], int] = time.time_ns,
) -> APIRouter:
    """GET /api/v1/sources (reader) and POST /api/v1/sources/{source}/owner (engineer);
    `agents()` names the enrolled agents."""
    router = APIRouter()
    read, write = Depends(auth.require("reader")), Depends(auth.require("engineer"))

    @router.get("/api/v1/sources", dependencies=[read])
    def list_sources() -> list[dict[str, Any]]:
        """Every source with its owner, whether an engineer confirmed it, and its history."""
        return [_entry(src, spans) for src, spans in store.owners.sources().items() if spans]

    @router.post("/api/v1/sources/{source}/owner")
    def change_owner(
        source: str, body: OwnerChange, request: Request, who: Principal = write
    ) -> dict[str, Any]:
        """Give a source to an enrolled agent from a sample time on, or confirm its current
        owner; logged, and kept in the source's history."""
        if body.agent not in agents():
            raise HTTPException(422, f"agent {body.agent!r} is not enrolled")
        if body.start is not None and body.start.tzinfo is None:
            raise HTTPException(422, "from must carry a UTC offset, e.g. 2026-01-01T00:00:00Z")
        now = clock()
        start = int(parse_rfc3339(body.start.isoformat()) * 1e9) if body.start else now
        before = store.owners.spans(source)
        try:
            store.move_source(source, body.agent, start, who.name, body.reason, now)
        except ValueError as exc:
            raise HTTPException(422, str(exc)) from None
        audit.source_owner_changed(
            source, body.agent, before[-1].agent if before else None, who.name, body.reason,
            _time(store.owners.spans(source)[-1].from_ns), audit.client_of(request.scope),
        )
        return _entry(source, store.owners.spans(source))

    return router
