"""The collector's audit trail: one structured log line per act that changes who may do what,
or what a result will say (docs/security.md, "Audit trail").

Every line carries `logger` = "dcmeter.collector.audit", an `event` name, the actor (`by`: a
token's name, an agent id, or the local user of a command) and the object acted on; lines
caused by a request carry the client's address (`client`). Secrets never appear: no token,
no private key; a public key appears only as its fingerprint. Refused requests are
rate-limited per (reason, client): a client can repeat them at will.
"""

from __future__ import annotations

import getpass
import sys
from collections.abc import Iterable, Mapping
from typing import Any, TextIO

import structlog

from dcmeter.base.ratelimit import LogLimiter
from dcmeter.collectors.evaluation.jsonl import rfc3339

NAME = "dcmeter.collector.audit"


def _emit(level: str, event: str, to: Any = None, **fields: Any) -> None:
    """Write one audit line through `to` (the process's structlog set-up if None)."""
    getattr(to or structlog.get_logger(NAME), level)(event, logger=NAME, **fields)


def cli_logger(stream: TextIO | None = None) -> Any:
    """A logger writing audit lines as JSON to `stream` (stderr): for commands whose stdout
    carries their answer (a token) and that do not configure logging."""
    return structlog.wrap_logger(
        structlog.PrintLogger(stream or sys.stderr),
        processors=[structlog.processors.add_log_level,
                    structlog.processors.TimeStamper(fmt="iso", utc=True),
                    structlog.processors.JSONRenderer()],
    )


def local_user() -> str:
    """The name of the user running this command (the actor of a local command)."""
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry and no LOGNAME/USER (a bare container)
        return "unknown"


def _time(ns: int | None) -> str | None:
    """A store time (ns since the epoch) as RFC 3339, as the API shows it."""
    return None if ns is None else rfc3339(ns / 1e9)


def client_of(scope: Mapping[str, Any]) -> str | None:
    """The client's address (host) of an ASGI request scope, or None."""
    client = scope.get("client")
    return str(client[0]) if client else None


def window_opened(w: Any, client: str | None) -> None:
    """Log a window opened: kind, start, scope, who opened it."""
    _emit("info", "window opened", window=w.id, kind=w.kind, start=_time(w.start_ns),
          scope=None if w.scope is None else list(w.scope), note=w.note,
          by=w.opened_by, client=client)


def window_stopped(w: Any, client: str | None) -> None:
    """Log a window stopped: its end and who stopped it."""
    _emit("info", "window stopped", window=w.id, kind=w.kind, start=_time(w.start_ns),
          end=_time(w.end_ns), by=w.closed_by, client=client)


def window_reevaluated(
    window: int, revision: int, reason: str, by: str | None, site_sha256: str | None,
    software: str,
) -> None:
    """Log a closed window's result computed again as a new revision."""
    _emit("warning", "window re-evaluated", window=window, revision=revision, reason=reason,
          by=by, site_sha256=site_sha256, software=software)


def run_posted(
    window: int, run: Any, status: str, by: str, client: str | None, run_id: int | None
) -> None:
    """Log a run posted to an AI window: stored, duplicate or conflict."""
    _emit("info", "run posted", window=window, phase=run.phase, model=run.key[1],
          repetition=run.repetition, status=status, run=run_id, by=by, client=client)


def console_signed_in(name: str, role: str, client: str | None) -> None:
    """Log a console sign-in with a token (its name and role; never the token)."""
    _emit("info", "console signed in", token_name=name, role=role, by=name, client=client)


def console_signed_out(name: str, client: str | None) -> None:
    """Log a console sign-out."""
    _emit("info", "console signed out", token_name=name, by=name, client=client)


def token_created(name: str, role: str, by: str, to: Any = None) -> None:
    """Log a bearer token made (its name and role; never the token)."""
    _emit("info", "token created", to, token_name=name, role=role, by=by)


def token_revoked(name: str, by: str, to: Any = None) -> None:
    """Log a bearer token deleted."""
    _emit("info", "token revoked", to, token_name=name, by=by)


def refused(
    quiet: LogLimiter, status: int, reason: str, method: str, path: str,
    client: str | None, actor: str | None = None,
) -> None:
    """Log a request refused before its route ran, at most one line per (reason, client)
    per interval; `left_out`: the like lines not written since the last one."""
    left_out = quiet.allow((reason, client))
    if left_out is not None:
        _emit("warning", "request refused", status=status, reason=reason, method=method,
              path=path, client=client, by=actor, left_out=left_out)


def refused_left_out(quiet: LogLimiter) -> None:
    """Log the refusals counted but not written yet (at stop: no count is lost)."""
    for key, count in quiet.drain().items():
        reason, client = key if isinstance(key, tuple) else (key, None)
        _emit("warning", "request refused", reason=reason, client=client, left_out=count,
              final=True)


def agent_enrolled(
    agent: str, fingerprint: str, from_seq: int | None, by: str, to: Any = None, **more: Any
) -> None:
    """Log an agent's public key enrolled (its fingerprint) and the first seq it signs (None:
    written to keys_dir, the collector decides when it reads it)."""
    _emit("info", "agent enrolled", to, agent=agent, key=fingerprint, from_seq=from_seq,
          by=by, **more)


def key_rotated(agent: str, from_seq: int, fingerprint: str, batch: str) -> None:
    """Log an agent's key rotation, verified and recorded (the agent is the actor)."""
    _emit("info", "agent key rotated", agent=agent, from_seq=from_seq, key=fingerprint,
          batch=batch, by=agent)


def sources_bound(agent: str, sources: Iterable[str], via: str) -> None:
    """Log each source bound to the agent that delivered it first (one line each)."""
    for source in sources:
        _emit("info", "source bound", source=source, agent=agent, via=via, by=agent)


def source_owner_changed(
    source: str, agent: str, previous: str | None, by: str, reason: str,
    from_: str | None, client: str | None,
) -> None:
    """Log a source moved to another agent, or its binding confirmed, by an engineer."""
    _emit("warning", "source owner changed", source=source, agent=agent, previous=previous,
          via="confirmed" if previous == agent else "moved", by=by, reason=reason,
          from_=from_, client=client)


def calibration_created(cid: int, quantity: str, by: str, client: str | None) -> None:
    """Log a calibration opened from its plan (issue 18)."""
    _emit("info", "calibration created", calibration=cid, quantity=quantity, by=by,
          client=client)


def calibration_reading(
    cid: int, point: str, repetition: int, status: str, by: str, client: str | None
) -> None:
    """Log a reading posted to a calibration: stored, duplicate or conflict."""
    _emit("info", "calibration reading posted", calibration=cid, point=point,
          repetition=repetition, status=status, by=by, client=client)


def calibration_closed(cid: int, result: str | None, by: str, client: str | None) -> None:
    """Log a calibration closed, its record frozen, with its overall statement."""
    _emit("info", "calibration closed", calibration=cid, result=result, by=by, client=client)
