"""A window's scope and opener: recorded, validated, and the evaluation reads only its sources."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from test_window_folds import END, START, Site1, general, post_all, ticks

from dcmeter.collectors.evaluation.jsonl import rfc3339
from dcmeter.collectors.evaluation.loads import mean_utilisation
from dcmeter.collectors.storage.store import Store

__all__ = ["general"]  # the fixture, imported for use here


def test_a_scoped_general_window_reads_only_its_hosts(general: Site1) -> None:
    with general.http() as http:
        body = {"kind": "general", "start": rfc3339(START), "scope": ["host-0", "host-1"]}
        scoped = http.post("/api/v1/windows", json=body).json()
        whole = http.post("/api/v1/windows", json={"kind": "general",
                                                   "start": rfc3339(START)}).json()
        assert scoped["scope"] == ["host-0", "host-1"] and whole["scope"] is None
        assert scoped["opened_by"] == "engineer-1" == whole["opened_by"]
        post_all(general, ticks())
        for w in (scoped, whole):
            assert http.post(f"/api/v1/windows/{w['id']}/stop",
                             json={"end": rfc3339(END)}).status_code == 200
        got = http.get(f"/api/v1/windows/{scoped['id']}").json()
        all_hosts = http.get(f"/api/v1/windows/{whole['id']}").json()
    assert got["window"]["scope"] == ["host-0", "host-1"]
    assert got["window"]["opened_by"] == "engineer-1"
    # U of the group = the mean of the hosts in scope, each a time-weighted mean
    series = general.store.series(["host-0", "host-1"], int((START - 900) * 1e9),
                                  int((END + 900) * 1e9))
    means = [mean_utilisation(s, START, END).mean for s in series]
    assert len(means) == 2 and None not in means
    want = sum(m for m in means if m is not None) / 2
    assert got["load"]["compute"] == pytest.approx(want, rel=1e-9)
    assert all_hosts["load"]["compute"] != pytest.approx(want, rel=1e-6)
    used = {q["source"] for q in got["quality"]["sources"]}
    assert {"host-0", "host-1"} <= used and not used & {"host-2", "host-3"}
    assert got["pue"] == pytest.approx(all_hosts["pue"])  # the meters count whole


@pytest.mark.parametrize(
    ("kind", "scope", "says"),
    [
        ("general", ["host-9"], "host-9 not among the site file's general sources"),
        ("infrastructure", ["host-0"], "scope applies to general and ai windows"),
        ("ai", ["host-0"], "the site file has no [ai] section"),
        ("general", [], "at least 1 item"),
    ],
)
def test_a_bad_scope_is_refused_and_nothing_opened(
    general: Site1, kind: str, scope: list[str], says: str
) -> None:
    with general.http() as http:
        r = http.post("/api/v1/windows", json={"kind": kind, "scope": scope})
        assert r.status_code == 422 and says in r.text
        assert http.get("/api/v1/windows").json() == []


def test_a_store_from_before_scopes_gains_the_columns(tmp_path: Path) -> None:
    # SQLite only: a store file from an older release (PostgreSQL stores start versioned).
    path = tmp_path / "old.sqlite"
    db = sqlite3.connect(path)
    db.execute("CREATE TABLE windows (id INTEGER PRIMARY KEY, kind TEXT NOT NULL,"
               " start_ns INTEGER NOT NULL, end_ns INTEGER, note TEXT,"
               " created_ns INTEGER NOT NULL)")
    db.execute("INSERT INTO windows VALUES (1, 'infrastructure', 5, 9, 'old', 1)")
    db.commit()
    db.close()
    store = Store(path)
    try:
        old = store.window(1)
        assert old is not None and (old.note, old.opened_by, old.scope) == ("old", None, None)
        new = store.open_window("general", 10, None, 11, "engineer-1", ["h"])
        assert store.window(new.id) == new and new.scope == ("h",)
    finally:
        store.close()


def test_the_cli_sends_a_scope(
    general: Site1, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dcmeter.cli.main import main

    monkeypatch.setenv("DCMETER_TOKEN", general.token)
    argv = ["window", "start", "--kind", "general", "--collector", general.url,
            "--scope", "host-0, host-1", "--scope", "host-3"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert out.endswith("scope host-0, host-1, host-3\n")
    assert main([*argv[:-2], "--scope", "nope"]) == 1
    assert capsys.readouterr().err == (
        "dcmeter: scope: nope not among the site file's general sources"
        " (host-0, host-1, host-2, host-3) (422)\n"
    )
