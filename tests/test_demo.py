"""`dcmeter demo`, the main job, end to end: its PUE within 1 % of the simulator's truth."""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from pathlib import Path

from conftest import ROOT


def test_demo_measures_pue_within_one_percent(tmp_path: Path) -> None:
    data = tmp_path / "demo"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "COLUMNS": "120"}
    r = subprocess.run(
        [sys.executable, "-m", "dcmeter", "demo", "--seconds", "6", "--data-dir", str(data)],
        capture_output=True, text=True, env=env, timeout=180,
    )
    assert r.returncode == 0, r.stdout + r.stderr
    m = re.search(r"PUE (\d+\.\d+) vs true (\d+\.\d+): error ([+-]\d+\.\d+) %", r.stdout)
    assert m, r.stdout
    measured, true = float(m[1]), float(m[2])
    assert abs(measured - true) / true < 0.01
    # One sign, one definition: the table's PUE row shows the same signed error.
    row = re.search(r"\bPUE\b[^\n]*?([+-]\d+\.\d+) %", r.stdout)
    assert row and row[1] == m[3], r.stdout
    assert "Quality: valid" in r.stdout
    # The PDU's inlet against the servers' Redfish BMCs (the demo exits 1 unless it agrees).
    assert re.search(r"Reconciliation pdu-001 inlet: meter .*?: agrees", r.stdout, re.S), r.stdout
    assert str(data) in r.stdout
    db = sqlite3.connect(data / "collector.sqlite")
    (batches,) = db.execute("SELECT COUNT(*) FROM batches WHERE chain = 'ok'").fetchone()
    assert batches >= 6
