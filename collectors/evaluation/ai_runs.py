"""The runs of an AI window: what each reports, its FP16-equivalent FLOPs, its quality check.

T/CECA-G 0355—2025 6.3: a run is one task (training or inference of one Annex D model), timed
as 6.3.3.1 says; F is counted at FP16 (other precisions converted, formula (3)) from the
Annex E catalogue or given; the run counts only when it reached the model's quality target.
The same run object is the body of `POST /api/v1/windows/{id}/runs` and an item of the JSON
list `dcmeter evaluate --runs` reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Annotated, Any

from pydantic import (
    AfterValidator,
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    model_validator,
)

from dcmeter.base.configfile import ConfigError
from dcmeter.collectors.evaluation.flops import (
    MODELS,
    PRECISION_TO_FP16,
    SEQUENCE_LENGTH,
    UnknownModel,
    inference_flops,
    training_flops,
)
from dcmeter.collectors.evaluation.int64 import INT64_MAX, in_store_range
from dcmeter.collectors.evaluation.issues import issue
from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.evaluation.site_ai import AiSection, Phase, QualityTarget


class Run(BaseModel):
    """One run: [start, end] (RFC 3339 with offset), phase, model, repetition and its figures.

    `samples` (sequences for the language models), `tokens` and `flops` (operations at
    `precision`, not yet converted): at least one, none negative. A figure of 0 is kept (the
    run happened) but the run did no work and does not count (`no_work`). `quality`: the
    figure the run reached, a number, or an object by metric name where the model has several
    targets (llama2-70b inference: rouge1, rouge2, rougeL). `exit_status`: the workload's,
    0 for success.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    start: Annotated[AwareDatetime, AfterValidator(in_store_range)]
    end: Annotated[AwareDatetime, AfterValidator(in_store_range)]
    phase: Phase
    model: str = Field(min_length=1)
    repetition: int = Field(ge=1, le=INT64_MAX)  # a store column
    samples: float | None = Field(default=None, ge=0)
    tokens: float | None = Field(default=None, ge=0)
    flops: float | None = Field(default=None, ge=0)
    precision: str | None = Field(default=None, min_length=1)
    quality: float | dict[str, float] | None = None
    exit_status: int | None = Field(default=None, ge=-(2**31), le=2**31 - 1)  # an OS's int
    note: str | None = None

    @model_validator(mode="after")
    def _consistent(self) -> Run:
        if self.end <= self.start:
            raise ValueError(f"end {self.end.isoformat()} is not after start")
        if self.samples is None and self.tokens is None and self.flops is None:
            raise ValueError("give at least one of samples, tokens or flops")
        return self

    @property
    def start_s(self) -> float:
        """Start in seconds since the Unix epoch."""
        return self.start.timestamp()

    @property
    def end_s(self) -> float:
        """End in seconds since the Unix epoch."""
        return self.end.timestamp()

    @property
    def key(self) -> tuple[str, str]:
        """(phase, model name in lower case): the task the run is a repetition of."""
        return self.phase, self.model.strip().lower()

    def to_json(self) -> dict[str, Any]:
        """Return the run as a JSON object, times in RFC 3339 UTC ("Z")."""
        body = self.model_dump(mode="json")
        body["start"], body["end"] = rfc3339(self.start_s), rfc3339(self.end_s)
        return body


def _where(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(p) for p in loc) or "(run)"


def parse_run(raw: Mapping[str, Any]) -> Run:
    """Validate one run object; raise ValueError naming each bad key."""
    try:
        return Run.model_validate(raw)
    except ValidationError as exc:
        lines = [
            f"key {_where(tuple(e['loc']))}: {e['msg']}" for e in exc.errors(include_url=False)
        ]
        raise ValueError("; ".join(lines)) from None


def parse_runs(raw: Sequence[Any]) -> list[Run]:
    """Validate a list of run objects; raise ConfigError naming the run (0-based) and key."""
    runs = []
    for index, item in enumerate(raw):
        if not isinstance(item, Mapping):
            raise ConfigError(f"runs[{index}]: expected a JSON object, got {item!r}")
        try:
            runs.append(parse_run(item))
        except ValueError as exc:
            raise ConfigError(f"runs[{index}]: {exc}") from None
    return runs


@dataclass(frozen=True, slots=True)
class RunFlops:
    """A run's F: as performed (`native`) and FP16-equivalent (`fp16`), and where it came from."""

    fp16: float | None
    native: float | None
    source: str | None  # "given", "catalogue", "catalogue (tokens / 2048-token sequences)"
    precision: str
    factor: float | None
    samples: float | None  # the samples the catalogue figure was computed for
    issues: tuple[str, ...]


def run_flops(run: Run, section: AiSection | None) -> RunFlops:
    """Return the run's FLOPs converted to FP16-equivalent (6.3.2 formula (3), Annex E).

    Given `flops` win; else the catalogue's training (3 × forward) or inference (forward)
    FLOPs for `samples`, or for tokens / the model's sequence length when only tokens are
    given. The precision is the run's, else [ai] precision (default fp16).
    """
    table = section.precision_table() if section else dict(PRECISION_TO_FP16)
    precision = (run.precision or (section.precision if section else "fp16")).strip().lower()
    factor = table.get(precision)
    issues: list[str] = []
    if factor is None:
        issues.append(issue("unknown_precision", precision=precision, known=list(table)))
    native: float | None = None
    source: str | None = None
    samples = run.samples
    model = run.key[1]
    if run.flops is not None:
        native, source = run.flops, "given"
    else:
        if samples is None and run.tokens is not None and model in SEQUENCE_LENGTH:
            length = SEQUENCE_LENGTH[model]
            samples = run.tokens / length
            source = f"catalogue (tokens / {length}-token sequences)"
        if samples is None:
            issues.append(issue("no_flops_samples", models=list(SEQUENCE_LENGTH)))
        else:
            count = training_flops if run.phase == "train" else inference_flops
            try:
                native = count(model, samples)
            except UnknownModel:
                issues.append(issue("unknown_model", model=model, models=list(MODELS)))
            else:
                source = source or "catalogue"
    fp16 = None if native is None or factor is None else native * factor
    return RunFlops(fp16, native, source, precision, factor, samples, tuple(issues))


def no_work(run: Run, flops: RunFlops) -> list[str]:
    """Return why the run did no work: a reported samples, tokens or flops figure of 0.

    AEE = F / E (6.3.2) of a run without work is 0 and would pull its task's mean down; such
    a run is recorded but is not a repetition (6.3.3.3 step 5 counts measurements of work).
    """
    given = {"samples": run.samples, "tokens": run.tokens, "flops": run.flops}
    zero = [k for k, v in given.items() if v is not None and not v > 0]
    if not zero and flops.fp16 is not None and not flops.fp16 > 0:
        zero = ["FP16-equivalent flops"]
    return [issue("no_work", what=k) for k in zero]


def _target_json(t: QualityTarget, value: float | None) -> dict[str, Any]:
    met = None if value is None else t.met(value)
    return {"metric": t.metric, "target": t.target, "better": t.better, "value": value, "met": met}


def check_quality(
    run: Run, targets: Sequence[QualityTarget]
) -> tuple[bool, list[dict[str, Any]], list[str]]:
    """Hold the run's quality figure against its targets (6.3.3.3 step 3 b), Annex D).

    Return whether every target was met, each target with the value held against it, and the
    issues: no target known, no figure reported, a figure that is not a fraction where one is
    expected (`higher` is better), or a missed target.
    """
    phase, model = run.key
    if not targets:
        return False, [], [
            f"no quality target for {phase} {model}: add one under [[ai.quality_targets]]"
        ]
    names = ", ".join(t.metric for t in targets)
    if run.quality is None:
        return False, [_target_json(t, None) for t in targets], [
            issue("quality_not_reported", names=names)
        ]
    if isinstance(run.quality, dict):
        values = {t.metric: run.quality.get(t.metric) for t in targets}
    elif len(targets) == 1:
        values = {targets[0].metric: run.quality}
    else:
        return False, [_target_json(t, None) for t in targets], [
            issue("quality_one_number", phase=phase, model=model, n=len(targets), names=names)
        ]
    issues: list[str] = []
    shown = []
    for t in targets:
        value = values[t.metric]
        shown.append(_target_json(t, value))
        if value is None:
            issues.append(issue("quality_figure_missing", metric=t.metric))
        elif t.better == "higher" and not 0.0 <= value <= 1.0:
            issues.append(issue("quality_not_fraction", metric=t.metric, value=value))
            shown[-1]["met"] = None
        elif not t.met(value):
            sign = "<" if t.better == "higher" else ">"
            issues.append(issue("quality_missed", metric=t.metric, value=value, sign=sign,
                                target=t.target))
    return not issues, shown, issues
