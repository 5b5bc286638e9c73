"""Calibrations (issue 18, seed 004): the `calibrations` and `calibration_readings` tables.

A calibration is its plan (the JSON of collectors/evaluation/calibration_plan.Plan) and the
readings posted against it, one per (point, repetition). While it is open its record is
computed on each read (collectors/results/calibrations.py); at close the record is frozen
here and every later read returns it unchanged.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Any, Literal

from dcmeter.collectors.storage.db import Connection

CALIBRATIONS_SCHEMA = """
CREATE TABLE IF NOT EXISTS calibrations (
    id INTEGER PRIMARY KEY, created_ns INTEGER NOT NULL, created_by TEXT, plan TEXT NOT NULL,
    closed_ns INTEGER, closed_by TEXT, record TEXT);
CREATE TABLE IF NOT EXISTS calibration_readings (
    calibration_id INTEGER NOT NULL REFERENCES calibrations(id), point TEXT NOT NULL,
    repetition INTEGER NOT NULL, start_ns INTEGER NOT NULL, end_ns INTEGER NOT NULL,
    body TEXT NOT NULL, added_ns INTEGER NOT NULL, added_by TEXT,
    PRIMARY KEY (calibration_id, point, repetition));
"""
COLUMNS = "id, created_ns, created_by, plan, closed_ns, closed_by, record"
ReadingStatus = Literal["stored", "duplicate", "conflict"]


def add_calibration_tables(db: Connection) -> None:
    """Schema version 11: the calibrations and their readings (idempotent)."""
    db.ddl(CALIBRATIONS_SCHEMA)


@dataclass(frozen=True, slots=True)
class StoredCalibration:
    """One calibration: its plan, who opened it and when (ns), and once closed its frozen
    record."""

    id: int
    created_ns: int
    created_by: str | None
    plan: dict[str, Any]
    closed_ns: int | None = None
    closed_by: str | None = None
    record: dict[str, Any] | None = None


@dataclass(frozen=True, slots=True)
class StoredReading:
    """One repetition of one point: its dwell (ns) and the posted body as stored."""

    calibration_id: int
    point: str
    repetition: int
    start_ns: int
    end_ns: int
    body: dict[str, Any]
    added_ns: int
    added_by: str | None


def _calibration(row: Any) -> StoredCalibration:
    return StoredCalibration(
        int(row[0]), int(row[1]), row[2], json.loads(row[3]),
        None if row[4] is None else int(row[4]), row[5],
        None if row[6] is None else json.loads(row[6]),
    )


def _reading(row: Any) -> StoredReading:
    return StoredReading(int(row[0]), str(row[1]), int(row[2]), int(row[3]), int(row[4]),
                         json.loads(row[5]), int(row[6]), row[7])


class CalibrationTable:
    """Calibration methods for the Store (it has `_db`, `_lock` and a `_tx()` transaction)."""

    _db: Any
    _lock: threading.Lock

    def _tx(self) -> AbstractContextManager[Any]:
        raise NotImplementedError

    def add_calibration(
        self, plan: Mapping[str, Any], created_by: str | None, now_ns: int
    ) -> StoredCalibration:
        """Store a new open calibration of `plan` (its JSON form); answer it with its id."""
        text = json.dumps(plan, sort_keys=True)
        with self._tx() as db:
            cid = db.insert_returning_id(
                "INSERT INTO calibrations(created_ns, created_by, plan) VALUES (?,?,?)",
                (now_ns, created_by, text),
            )
        return StoredCalibration(cid, now_ns, created_by, json.loads(text))

    def calibration(self, cid: int) -> StoredCalibration | None:
        """One calibration, or None."""
        with self._lock:
            row = self._db.execute(
                f"SELECT {COLUMNS} FROM calibrations WHERE id = ?", (cid,)
            ).fetchone()
        return None if row is None else _calibration(row)

    def calibrations(self) -> list[StoredCalibration]:
        """All calibrations, newest first."""
        with self._lock:
            rows = self._db.execute(
                f"SELECT {COLUMNS} FROM calibrations ORDER BY id DESC"
            ).fetchall()
        return [_calibration(r) for r in rows]

    def add_reading(
        self, cid: int, point: str, repetition: int, start_ns: int, end_ns: int,
        body: Mapping[str, Any], now_ns: int, added_by: str | None,
    ) -> tuple[ReadingStatus, StoredReading]:
        """Record a reading once per (calibration, point, repetition), as `add_run` does runs.

        The same body again is a duplicate (a retry), another body a conflict; the stored
        reading is answered in both cases."""
        text = json.dumps(body, sort_keys=True)
        key = (cid, point, repetition)
        with self._tx() as db:
            row = db.execute(
                "SELECT calibration_id, point, repetition, start_ns, end_ns, body, added_ns,"
                " added_by FROM calibration_readings WHERE calibration_id = ? AND point = ?"
                " AND repetition = ?", key,
            ).fetchone()
            if row is not None:
                found = _reading(row)
                return ("duplicate" if row[5] == text else "conflict"), found
            db.execute(
                "INSERT INTO calibration_readings(calibration_id, point, repetition, start_ns,"
                " end_ns, body, added_ns, added_by) VALUES (?,?,?,?,?,?,?,?)",
                (*key, start_ns, end_ns, text, now_ns, added_by),
            )
        return "stored", StoredReading(cid, point, repetition, start_ns, end_ns,
                                       json.loads(text), now_ns, added_by)

    def readings(self, cid: int) -> list[StoredReading]:
        """The readings of a calibration, by point label then repetition."""
        with self._lock:
            rows = self._db.execute(
                "SELECT calibration_id, point, repetition, start_ns, end_ns, body, added_ns,"
                " added_by FROM calibration_readings WHERE calibration_id = ?"
                " ORDER BY point, repetition", (cid,),
            ).fetchall()
        return [_reading(r) for r in rows]

    def close_calibration(
        self, cid: int, record: Mapping[str, Any], closed_by: str | None, now_ns: int
    ) -> bool:
        """Freeze an open calibration's record; False if it was already closed (or absent)."""
        text = json.dumps(record, sort_keys=False, allow_nan=False)
        with self._tx() as db:
            cur = db.execute(
                "UPDATE calibrations SET closed_ns = ?, closed_by = ?, record = ?"
                " WHERE id = ? AND closed_ns IS NULL",
                (now_ns, closed_by, text, cid),
            )
            return bool(cur.rowcount == 1)
