"""The collector store's backends: the one chosen by `--store`, schema versions, locations."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from conftest import free_port

from dcmeter.base.configfile import ConfigError
from dcmeter.cli.main import main
from dcmeter.collectors import config
from dcmeter.collectors.storage.db import StoreError, masked
from dcmeter.collectors.storage.store import MIGRATIONS, Store
from tests.peers.old_store import back_to


def test_the_store_runs_on_the_chosen_backend(
    request: pytest.FixtureRequest, store_location: Callable[[str], Path | str]
) -> None:
    store = Store(store_location("s"))
    try:
        assert store.dialect == request.config.getoption("--store")
        versions = store._db.execute("SELECT version FROM schema_version ORDER BY version")
        assert [v for (v,) in versions] == [m.version for m in MIGRATIONS]
    finally:
        store.close()


def test_a_reopened_store_keeps_its_rows_and_migrates_once(
    store_location: Callable[[str], Path | str],
) -> None:
    where = store_location("s")
    store = Store(where)
    w = store.open_window("general", 10**18, "ünïcode note", 5, "engineer-1", ["h-1"])
    store.record_rejection(7, 401, "unknown agent", None)
    store.close()
    store = Store(where)
    try:
        assert store.window(w.id) == w and store.windows() == [w]
        assert store.counts() == {"batches": 0, "samples": 0, "rejected": 1}
        assert store.rejection_totals() == ([(401, "unknown agent", 1)], 1)
        (n,) = store._db.execute("SELECT COUNT(*) FROM schema_version").fetchone()
        assert n == len(MIGRATIONS)
        assert store.open_window("ai", 1, None, 2).id == w.id + 1
    finally:
        store.close()


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://dcmeter:s3cr3t@db.example:5432/dcm", "postgresql://dcmeter:***@db.example:5432/dcm"),
    ("postgresql://dcmeter@db/dcm?password=s3cr3t&sslmode=require",
     "postgresql://dcmeter@db/dcm?password=***&sslmode=require"),
    ("postgres://u:s3cr3t@[::1]:6543/d", "postgres://u:***@[::1]:6543/d"),
    ("postgresql://u:s3cr3t@h:port/d", "postgresql://***"),
    ("/var/lib/dcmeter/collector.sqlite", "/var/lib/dcmeter/collector.sqlite"),
])
def test_a_logged_location_never_shows_the_password(url: str, shown: str) -> None:
    assert masked(url) == shown


def test_an_unreachable_server_is_one_clear_error_without_the_password() -> None:
    url = f"postgresql://dcmeter:s3cr3t@127.0.0.1:{free_port()}/dcmeter"
    with pytest.raises(StoreError) as caught:
        Store(url)
    text = str(caught.value)
    assert text.startswith(f"store postgresql://dcmeter:***@127.0.0.1:{url.split(':')[3]}")
    assert "cannot connect to PostgreSQL" in text and "s3cr3t" not in text
    assert "\n" not in text


def test_the_config_takes_a_path_or_a_postgresql_url(tmp_path: Path) -> None:
    cfg = tmp_path / "collector.toml"
    cfg.write_text('[collector]\nstore = "data/c.sqlite"\n')
    assert config.load(cfg).collector.store == tmp_path / "data" / "c.sqlite"
    cfg.write_text('[collector]\nstore = "postgresql://dcmeter@db.example:5432/dcm"\n')
    assert config.load(cfg).collector.store == "postgresql://dcmeter@db.example:5432/dcm"
    cfg.write_text('[collector]\nstore = "mysql://dcmeter:s3cr3t@db.example/dcm"\n')
    with pytest.raises(ConfigError, match=r"key collector\.store: bad value") as caught:
        config.load(cfg)
    assert "s3cr3t" not in str(caught.value) and "postgresql://" in str(caught.value)


def test_the_token_cli_works_on_the_chosen_backend(
    tmp_path: Path, store_location: Callable[[str], Path | str],
    capsys: pytest.CaptureFixture[str],
) -> None:
    cfg = tmp_path / "collector.toml"
    cfg.write_text(f'[collector]\nstore = "{store_location("cli")}"\n')
    assert main(["collector", "token", "create", "-c", str(cfg), "--role", "reader"]) == 0
    token = capsys.readouterr().out.strip()
    store = Store(store_location("cli"))
    try:
        [kept] = store.tokens()
        assert kept.role == "reader" and kept.hash != token and token.startswith("dcm")
    finally:
        store.close()


def test_a_postgresql_url_without_psycopg_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "psycopg", None)  # as if not installed: import fails
    with pytest.raises(StoreError, match=r"pip install 'dcmeter\[postgresql\]'") as caught:
        Store("postgresql://dcmeter:s3cr3t@127.0.0.1:1/dcmeter")
    assert "s3cr3t" not in str(caught.value)


def test_a_broken_postgresql_connection_is_replaced(
    request: pytest.FixtureRequest, store_location: Callable[[str], Path | str]
) -> None:
    if request.config.getoption("--store") != "postgresql":
        pytest.skip("about PostgreSQL connections: runs with --store=postgresql")
    import psycopg

    where = str(store_location("s"))
    store = Store(where)
    try:
        store.record_rejection(1, 400, "malformed", None)
        admin = where.rsplit("/", 1)[0] + "/postgres"
        with psycopg.connect(admin, autocommit=True) as conn:  # as a server restart would
            conn.execute("SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                         " WHERE datname = %s", (where.rsplit("/", 1)[1],))
        with pytest.raises(psycopg.OperationalError):
            store.record_rejection(2, 400, "malformed", None)
        store.record_rejection(3, 400, "malformed", None)  # on a new connection
        assert store.counts()["rejected"] == 2
    finally:
        store.close()


def test_the_collector_logs_its_store_without_the_password(
    tmp_path: Path, store_location: Callable[[str], Path | str],
    capfd: pytest.CaptureFixture[str],
) -> None:
    from conftest import SITE_TOML

    from dcmeter.collectors.commands.cli import build

    where = str(store_location("c"))
    if where.startswith("postgresql://"):  # trust auth takes any password: show one is hidden
        where = where.replace("postgresql://dcmeter@", "postgresql://dcmeter:s3cr3t@")
    (tmp_path / "site.toml").write_text(SITE_TOML)
    cfg = tmp_path / "collector.toml"
    cfg.write_text(f'[collector]\nport = {free_port()}\nstore = "{where}"\n'
                   'site = "site.toml"\n')
    _, store = build(cfg)
    store.close()
    out = capfd.readouterr().err  # the tests' log goes to stderr (tests/conftest.py)
    assert "collector starting" in out and masked(where) in out and "s3cr3t" not in out


def test_a_store_from_before_ownership_merges_reconfigured_series_and_binds_sources(
    store_location: Callable[[str], Path | str],
) -> None:
    """Schema 4 → 6: a meter whose address changed had two series (the old key held the
    address); they become one, with both spans of samples, and each source is bound to the
    agent that delivered it first."""
    where = store_location("s")
    store = Store(where)
    db = store._db
    with db.transaction():
        for table in ("source_meta", "source_owners"):
            db.execute(f"DROP TABLE {table}")
        back_to(db, 4)
        rows = [
            ("old-1", "rack-a", "meter-it", "10.0.0.1:502/1", 0.005),
            ("old-2", "rack-a", "meter-it", "10.0.0.9:502/1", 0.002),
            ("old-3", "rack-b", "meter-it", "x", None),  # a later second agent: not the owner
        ]
        for key, agent, source, address, acc in rows:
            db.execute(
                "INSERT INTO series(key, agent, source, protocol, address, source_labels,"
                " accuracy, metric, unit, kind, modulus, labels) VALUES"
                " (?,?,?,'modbus',?,'{}',?,'energy_import_kwh','kWh','counter',NULL,'{}')",
                (key, agent, source, address, acc),
            )
        ids = [i for (i,) in db.execute("SELECT id FROM series ORDER BY id")]
        db.executemany("INSERT INTO samples VALUES (?,?,?,?)",
                       [(ids[0], 1, 10.0, 1), (ids[1], 2, 11.0, 2), (ids[2], 3, 99.0, 1)])
    store.close()
    store = Store(where)
    try:
        series = store._db.execute(
            "SELECT id, agent, address, accuracy FROM series ORDER BY id").fetchall()
        assert [tuple(r) for r in series] == [(ids[0], "rack-a", "10.0.0.9:502/1", 0.002),
                                              (ids[2], "rack-b", "x", None)]
        got = store.series(["meter-it"], 0, 10)
        assert len(got) == 1 and list(got[0].values) == [10.0, 11.0]  # rack-b's not read
        assert [s.agent for s in store.owners.spans("meter-it")] == ["rack-a"]
        assert store.owners.spans("meter-it")[0].via == "migration"
    finally:
        store.close()
