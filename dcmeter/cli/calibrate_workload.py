"""A training or inference workload as the tokens/s reference (seed 004's AI framework).

Each repetition launches `[driver] command` + the point's `command` the way `dcmeter run`
does (the report file in $DCMETER_RUN_REPORT, the repetition and window in
$DCMETER_RUN_REPETITION and $DCMETER_RUN_WINDOW, the collector token withheld), times it from
just before the launch to its exit, and posts it as a run of the AI window (phase and model
from [driver]). The instrument is dcmeter's tokens/s of that run (its tokens over its timed
interval); the reference is the framework's own figure from the report:
`framework_tokens_per_s`, else `tokens` / `elapsed_s` (the seconds of its generation loop).
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from dcmeter.cli.calibrate_drivers import DriverError, Measured, PostRun
from dcmeter.cli.calibrate_exec import find_tool
from dcmeter.cli.client import ENV_TOKEN
from dcmeter.cli.run_cli import ENV_REPETITION, ENV_REPORT, ENV_WINDOW, status_text
from dcmeter.cli.run_records import read_framework_report
from dcmeter.collectors.evaluation.calibration_plan import Plan, PlanPoint

# [driver] phase and the quantity name say it in full; a run says it as `dcmeter run` does.
PHASES = {"inference": "infer", "training": "train"}


def run_repetition(plan: Plan, point: PlanPoint, repetition: int) -> int:
    """The run's repetition number in the AI window: unique per (point, repetition), since
    the window keeps one run per (phase, model, repetition)."""
    index = [p.label for p in plan.points].index(point.label)
    return index * plan.calibration.repetitions + repetition


class WorkloadDriver:
    """Runs the workload once per repetition and posts each run."""

    def __init__(self, plan: Plan, post_run: PostRun) -> None:
        spec = plan.driver
        phase = spec.phase or plan.calibration.quantity
        if phase not in PHASES:
            raise DriverError(f"driver workload: phase {phase!r}: set [driver] phase to"
                              " inference or training")
        if not spec.model:
            raise DriverError("driver workload: set [driver] model (the run's model name)")
        if not spec.command:
            raise DriverError("driver workload: set [driver] command (the workload to run)")
        if os.sep not in spec.command[0]:
            find_tool(spec.command[0])  # missing: say so now, not at the first point
        self._plan, self._post = plan, post_run
        self.phase, self.model = PHASES[phase], spec.model
        self._tmp = tempfile.TemporaryDirectory(prefix="dcmeter-cal-run-")

    def measure(self, point: PlanPoint, repetition: int) -> Measured:
        """Run the workload once; post the run; the framework's tokens/s is the reference."""
        argv = [*self._plan.driver.command, *point.command]
        rep = run_repetition(self._plan, point, repetition)
        what = f"point {point.label!r} repetition {repetition}: {argv[0]}"
        report = Path(self._tmp.name) / f"report-{rep}.json"
        report.unlink(missing_ok=True)  # a stale report must never be read as this run's
        env = {k: v for k, v in os.environ.items() if k != ENV_TOKEN}  # the token is not its
        env.update({ENV_REPORT: str(report), ENV_REPETITION: str(rep)})
        if self._plan.instrument.window is not None:
            env[ENV_WINDOW] = str(self._plan.instrument.window)
        start = datetime.now(UTC)
        try:
            child = subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL)
        except OSError as exc:
            raise DriverError(f"{what}: cannot launch: {exc.strerror or exc}") from None
        code = child.wait()
        end = datetime.now(UTC)
        if code != 0:
            raise DriverError(f"{what}: {status_text(code)}; no run recorded")
        figures, framework, why = read_framework_report(report)
        if why is not None:
            raise DriverError(f"{what}: report ${ENV_REPORT} not usable: {why}")
        tokens = figures.get("tokens")
        reference = framework.get("framework_tokens_per_s")
        if reference is None and tokens is not None and "elapsed_s" in framework:
            reference = tokens / framework["elapsed_s"]
        if tokens is None or reference is None:
            raise DriverError(f"{what}: its report must give tokens and framework_tokens_per_s"
                              " or elapsed_s (docs/calibration.md)")
        run = self._run_body(point, repetition, rep, start, end, code, figures)
        try:
            run_id = self._post(run)
        except DriverError:
            raise
        except Exception as exc:  # the caller's poster: its fault is this point's, in a line
            raise DriverError(f"{what}: the run could not be posted: {exc}") from None
        return Measured(
            start=start.timestamp(), end=end.timestamp(), reference=reference, run=run_id,
            detail={"tool": "workload", "command": argv, "phase": self.phase,
                    "model": self.model, "run_repetition": rep, "tokens": tokens, **framework},
        )

    def _run_body(self, point: PlanPoint, repetition: int, rep: int, start: datetime,
                  end: datetime, code: int, figures: dict[str, Any]) -> dict[str, Any]:
        """The run as `dcmeter run` posts it (validated by the same model)."""
        from dcmeter.collectors.evaluation.ai_runs import parse_run

        body: dict[str, Any] = {"start": start.isoformat(), "end": end.isoformat(),
                                "phase": self.phase, "model": self.model, "repetition": rep,
                                "exit_status": code, **figures}
        body.setdefault("note", f"calibration point {point.label}, repetition {repetition}")
        try:
            return parse_run(body).to_json()
        except ValueError as exc:
            raise DriverError(f"point {point.label!r}: not a valid run: {exc}") from None

    def close(self) -> None:
        """Remove the report files."""
        self._tmp.cleanup()
