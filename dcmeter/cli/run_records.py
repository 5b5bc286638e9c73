"""What `dcmeter run` reads and keeps besides the collector: the workload's report file and
the spool of runs that could not be posted (docs/windows-cli.md)."""

from __future__ import annotations

import json
import math
import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from dcmeter.cli.client import Client, CliError

FIGURES = ("samples", "tokens", "flops")
REPORT_KEYS = (*FIGURES, "precision", "quality", "note")
# The framework's own throughput figures, read by `dcmeter calibrate` (the reference of a
# tokens/s calibration, docs/calibration.md) and accepted but not posted by `dcmeter run`.
FRAMEWORK_KEYS = ("framework_tokens_per_s", "elapsed_s")


def _quality(value: Any) -> float | dict[str, float]:
    """The report's `quality` as the Run model takes it: a number or {metric: value}."""
    def number(v: Any, where: str) -> float:
        if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
            raise ValueError(f"{where}: expected a finite number, got {v!r}")
        return float(v)

    if not isinstance(value, dict):
        return number(value, "quality")
    if isinstance(value.get("metric"), str):  # {"metric": "top1", "value": 0.759, …}
        return {value["metric"]: number(value.get("value"), "quality.value")}
    if not value:
        raise ValueError("quality: an empty object")
    return {str(k): number(v, f"quality.{k}") for k, v in value.items()}


def read_report(path: Path) -> tuple[dict[str, Any], str | None]:
    """The workload's report: (its keys mapped onto the Run's, None) or ({}, why ignored).

    No file or an empty one is no report, without a warning.
    """
    figures, _, why = read_framework_report(path)
    return figures, why


def read_framework_report(path: Path) -> tuple[dict[str, Any], dict[str, float], str | None]:
    """The workload's report: (the Run's keys, the framework's figures (FRAMEWORK_KEYS), None)
    or ({}, {}, why ignored). No file or an empty one is no report, without a warning."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}, {}, None
    except (OSError, UnicodeDecodeError) as exc:
        return {}, {}, f"cannot read it: {exc}"
    if not text.strip():
        return {}, {}, None
    try:
        raw = json.loads(text)
    except ValueError as exc:
        return {}, {}, f"not JSON: {exc}"
    valid = ", ".join((*REPORT_KEYS, *FRAMEWORK_KEYS))
    if not isinstance(raw, dict):
        return {}, {}, f"expected a JSON object with keys {valid}"
    out: dict[str, Any] = {}
    framework: dict[str, float] = {}
    try:
        for key, value in raw.items():
            if key not in REPORT_KEYS and key not in FRAMEWORK_KEYS:
                raise ValueError(f"unknown key {key!r}; valid: {valid}")
            if value is None:
                continue
            if key in FRAMEWORK_KEYS:
                # A rate or a duration: 0 would make the reference 0 or infinite.
                if (isinstance(value, bool) or not isinstance(value, int | float)
                        or not math.isfinite(value) or value <= 0):
                    raise ValueError(f"{key}: expected a number > 0, got {value!r}")
                framework[key] = float(value)
            elif key in FIGURES:
                # 0 is kept: the collector records the run and marks it not valid (no work).
                if (isinstance(value, bool) or not isinstance(value, int | float)
                        or not math.isfinite(value) or value < 0):
                    raise ValueError(f"{key}: expected a number >= 0, got {value!r}")
                out[key] = float(value)
            elif key == "quality":
                out[key] = _quality(value)
            elif not isinstance(value, str) or not value.strip():
                raise ValueError(f"{key}: expected a non-empty string, got {value!r}")
            else:
                out[key] = value.strip()
    except ValueError as exc:
        return {}, {}, str(exc)
    return out, framework, None


def warn(text: str) -> None:
    print(f"dcmeter: {text}", file=sys.stderr, flush=True)


def unreachable(exc: CliError) -> bool:
    """Whether the collector could not be reached (rather than refused)."""
    import httpx

    # Client.call raises `from None` inside its except clause: the transport error is the
    # context of the CliError; a refusal has none.
    return isinstance(exc.__context__, httpx.TransportError)


# The spool: one JSON object per line, {"window": ID, "run": {…}, "error": "why"}.


def spool_append(path: Path, window: int, run: Mapping[str, Any], error: str) -> None:
    """Append one run that could not be posted to the spool file."""
    line = json.dumps({"window": window, "run": dict(run), "error": error}, ensure_ascii=False)
    try:
        with path.open("a", encoding="utf-8") as f:
            f.write(line + "\n")
    except OSError as exc:
        # The last place the run exists is this process: print it rather than lose it.
        raise CliError(f"--spool {path}: {exc.strerror or exc}; the run was: {line}") from None


def spooled(path: Path) -> Iterator[tuple[str, dict[str, Any] | None]]:
    """Each line of the spool file with its entry, None for a line that is not one."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except FileNotFoundError:
        return
    except OSError as exc:
        raise CliError(f"{path}: {exc.strerror or exc}", 2) from None
    for line in lines:
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            entry = None
        ok = (isinstance(entry, dict) and isinstance(entry.get("window"), int)
              and isinstance(entry.get("run"), dict))
        yield line, entry if ok else None


def cmd_resend(c: Client, path: Path) -> int:
    """Post the spooled runs; keep in the file only those not accepted."""
    if not path.is_file():
        raise CliError(f"--resend {path}: no such file", 2)
    kept: list[str] = []
    sent = 0
    down: str | None = None
    for line, entry in spooled(path):
        if entry is None or down is not None:
            if entry is None:
                warn(f"{path}: kept a line that is not a spooled run: {line[:60]}")
            kept.append(line)
            continue
        run = entry["run"]
        what = f"window {entry['window']}, {run.get('phase')} {run.get('model')}" \
               f" repetition {run.get('repetition')}"
        try:
            c.call("POST", f"/windows/{entry['window']}/runs", json=run)
            sent += 1
        except CliError as exc:
            kept.append(line)
            if unreachable(exc):
                down = str(exc)
            else:
                warn(f"{what}: kept in {path}: {exc}")
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(f"{x}\n" for x in kept), encoding="utf-8")
    os.replace(tmp, path)
    if down is not None:
        warn(f"{down}; {sent} sent, {len(kept)} kept in {path}")
    elif kept:
        warn(f"{sent} sent, {len(kept)} kept in {path}")
    else:
        warn(f"{sent} run(s) sent; {path} is empty")
    return 1 if kept else 0
