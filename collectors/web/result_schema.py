"""A window's result in the API: its OpenAPI description, and the revision parameters.

The routes return the result as plain JSON (collectors/evaluation/evaluate.py builds it);
these models only describe it in /openapi.json (`responses=`), so nothing is filtered or
reshaped on the way out. Fields beyond those named here are allowed (`extra="allow"`).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from dcmeter.collectors.evaluation.int64 import INT64_MAX


class ResultRevision(BaseModel):
    """Which stored evaluation of a closed window this is (collectors/results/frozen.py)."""

    number: int = Field(description="1 for the result stored at the stop, then +1 per"
                        " re-evaluation")
    computed_at: str = Field(description="RFC 3339 UTC time the result was computed")
    site_sha256: str | None = Field(description="SHA-256 (hex) of the site file bytes the"
                                    " collector had loaded; null if built without a file")
    software: str = Field(description="the software that computed it: `dcmeter X.Y.Z`")
    reason: str = Field(description="`window stopped`, `frozen on first read after upgrade`,"
                        " or the engineer's reason for a re-evaluation")
    by: str | None = Field(description="the token name that stopped or re-evaluated it")


class InstrumentRow(BaseModel):
    """One source that delivered samples to the window (collectors/evaluation/instruments.py)."""

    source: str
    agent: str | None = Field(description="the agent that delivered it; null offline")
    protocol: str | None = Field(description="modbus, ipmi, snmp, nvml, host; null offline")
    address: str | None = Field(description="where the agent reads it; null offline")
    kind: str | None = Field(description="meter, compute, storage, network, gpu")
    point: str | None = Field(description="the GB 40879 measurement point (`total`, `it_pdu`…)")
    roles: list[str] = Field(description="the site file's lists naming it (`energy.total`…)")
    device: dict[str, str] = Field(description="what the device says it is: make, model,"
                                   " serial, firmware, device_id, sys_descr, uuid, profile…")
    accuracy: float | None = Field(description="relative error bound (0.005: ±0.5 %)")
    accuracy_source: str | None = Field(description="`site file`, `agent config`, `default`"
                                        " or null")
    accuracy_basis: str | None = Field(description="where the figure comes from, in words")
    calibrated: str | None = Field(description="calibration date (YYYY-MM-DD), site file")
    calibration_due: str | None = Field(description="calibration due date, site file")
    certificate: str | None = Field(description="calibration certificate, site file")
    overdue: bool = Field(description="calibration due before the window's end day")
    samples: int = Field(description="its samples in the window")


class ReconciliationSet(BaseModel):
    """One [[reconcile]] set in a window (collectors/evaluation/reconcile.py); energies in
    kWh, null where not computed."""

    model_config = ConfigDict(extra="allow")

    name: str
    meter: str = Field(description="the meter's source id")
    below: list[str] = Field(description="the source ids behind the meter")
    meter_kwh: float | None = Field(description="the meter's energy E_meter")
    below_kwh: float | None = Field(description="the sum S of the sources below it")
    difference_kwh: float | None = Field(description="D = E_meter − S")
    ratio: float | None = Field(description="S / E_meter")
    expected_loss_kwh: float | None = Field(description="L, the declared expected loss")
    allowance_kwh: float | None = Field(description="A, the declared allowance")
    uncertainty_kwh: float | None = Field(description="U, the combined uncertainty of D at"
                                          " the level of the accuracy bounds")
    excess_kwh: float | None = Field(description="|D − L|")
    verdict: str = Field(description="`agrees` (|D − L| ≤ A + U), `disagrees` or"
                         " `not_computed`")
    issues: list[str] = Field(description="why not computed, or the disagreement, in English")


class IssueDetail(BaseModel):
    """One issue's catalogue entry (collectors/evaluation/issues.py, docs/evaluation.md)."""

    code: str = Field(description="stable issue code, e.g. `clock_unsynced`; `text` for a"
                      " text without a code (shown as written)")
    params: dict[str, object] = Field(description="the template's parameters (JSON-plain);"
                                      " `inner`, where present, is the detail of the issue"
                                      " it gives the place of")


class ResultQuality(BaseModel):
    """A result's data quality: validity and the reasons, per source, chain and clock."""

    model_config = ConfigDict(extra="allow")

    valid: bool = Field(description="whether the result is valid")
    issues: list[str] = Field(description="the issues, in English")
    issue_details: list[IssueDetail] | None = Field(
        default=None, description="the same issues in the same order, each as its code and"
        " params (a report writes them in its language); absent on a result frozen before"
        " issue codes existed")


class WindowResult(BaseModel):
    """A window's result (docs/evaluation.md); `revision` on a closed window's only."""

    model_config = ConfigDict(extra="allow")

    kind: str
    site: str
    window: dict[str, object] = Field(description="id, kind, state, start, end, hours,"
                                      " note, opened_by, closed_by, scope")
    quality: ResultQuality = Field(description="valid, issues, issue_details, sources, chain,"
                                   " clock, …")
    conforming: bool = Field(description="whether the site file keeps every fixed rule of"
                             " T/CECA-G 0355—2025 (docs/evaluation.md)")
    deviations: list[dict[str, object]] = Field(
        description="each fixed rule the site file declares it changes: rule, clause,"
        " standard, used, key, reason")
    verdict: dict[str, object] = Field(
        description="the clause 4 front-runner verdict: category (advanced, energy-saving,"
        " none), indicative, basis, clause5 (infrastructure: the clause 5 register)")
    instruments: list[InstrumentRow] = Field(
        default_factory=list, description="the instrument list: every source with samples"
        " in the window; absent from results frozen before it existed")
    reconciliation: list[ReconciliationSet] = Field(
        default_factory=list, description="each [[reconcile]] set of the site file: the meter"
        " against the sum of the sources below it; absent from results frozen before it"
        " existed")
    revision: ResultRevision | None = Field(
        default=None, description="the stored revision of a closed window's result; absent"
        " while the window is open and offline (`dcmeter evaluate`)")


class WindowReevaluate(BaseModel):
    """Body of POST /api/v1/windows/{id}/reevaluate."""

    model_config = ConfigDict(extra="forbid")

    reason: Annotated[str, StringConstraints(strip_whitespace=True, min_length=1,
                                             max_length=1000)] = Field(
        description="why the closed window is computed again; kept with the new revision")


# `?revision=N` of the result and report routes: a stored revision of a closed window.
RevisionNumber = Annotated[int | None, Query(
    ge=1, le=INT64_MAX, description="a stored revision of a closed window (default: the latest)")]
