"""Bearer tokens and roles on the windows API, and its list filters, on a real socket."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from conftest import SITE_TOML, Collector, serve

from dcmeter.base.configfile import ConfigError
from dcmeter.collectors import config
from dcmeter.collectors.evaluation.site import load_site
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.api import create_app
from dcmeter.collectors.web.auth import PREFIX, create_token, token_hash

RUN = {"start": "2026-06-01T00:10:00Z", "end": "2026-06-01T00:20:00Z", "phase": "infer",
       "model": "resnet-50", "repetition": 1, "flops": 1e12}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_no_or_bad_token_is_401_with_a_bearer_challenge(collector: Collector) -> None:
    base = f"{collector.url}/api/v1/windows"
    with collector.http() as eng:
        wid = eng.post(base, json={"kind": "ai", "start": "2026-06-01T00:00:00Z"}).json()["id"]
    calls = [("GET", base, None), ("GET", f"{base}/{wid}", None), ("GET", f"{base}/{wid}/runs", None),
             ("POST", base, {"kind": "infrastructure"}), ("POST", f"{base}/{wid}/stop", None),
             ("POST", f"{base}/{wid}/runs", RUN)]
    bad = PREFIX + "x" * 43
    for headers in ({}, bearer(bad), {"Authorization": f"Basic {bad}"}, {"Authorization": "Bearer"}):
        for method, url, body in calls:
            r = httpx.request(method, url, json=body, headers=headers)
            assert r.status_code == 401, (method, url, headers, r.text)
            assert r.headers["www-authenticate"] == "Bearer"
            detail = r.json()["detail"]
            assert isinstance(detail, str) and "\n" not in detail and bad not in detail
    # Authentication comes before the body is read: a bad body without a token is still 401.
    assert httpx.post(base, json={"kind": "nonsense"}).status_code == 401
    assert collector.store.window(wid) is not None and collector.store.window(wid).end_ns is None  # type: ignore[union-attr]
    assert collector.store.runs(wid) == []


def test_reader_reads_engineer_writes(collector: Collector) -> None:
    base = f"{collector.url}/api/v1/windows"
    with collector.http("reader") as reader, collector.http("engineer") as eng:
        refused = reader.post(base, json={"kind": "ai", "start": "2026-06-01T00:00:00Z"})
        assert refused.status_code == 403
        assert refused.json()["detail"] == "token 'reader-1' has role 'reader'; this needs role 'engineer'"
        assert collector.tokens["reader"] not in refused.text
        opened = eng.post(base, json={"kind": "ai", "start": "2026-06-01T00:00:00Z"})
        assert opened.status_code == 201
        wid = opened.json()["id"]
        assert reader.post(f"{base}/{wid}/runs", json=RUN).status_code == 403
        assert eng.post(f"{base}/{wid}/runs", json=RUN).status_code == 201
        assert reader.post(f"{base}/{wid}/stop", json={"end": "2026-06-01T01:00:00Z"}).status_code == 403
        assert collector.store.window(wid).end_ns is None  # type: ignore[union-attr]
        assert [w["id"] for w in reader.get(base).json()] == [wid]
        assert reader.get(f"{base}/{wid}").json()["window"]["state"] == "open"
        assert [r["repetition"] for r in reader.get(f"{base}/{wid}/runs").json()] == [1]
        stopped = eng.post(f"{base}/{wid}/stop", json={"end": "2026-06-01T01:00:00Z"})
        assert stopped.status_code == 200 and stopped.json()["state"] == "closed"
        assert reader.get(f"{base}/{wid}").json()["window"]["state"] == "closed"


def test_batches_and_health_need_no_token_and_revocation_is_immediate(collector: Collector) -> None:
    health = httpx.get(f"{collector.url}/api/v1/health")
    assert health.status_code == 200 and health.json()["status"] == "ok"
    # A batch is judged by its signature, not a token: garbage is 400, not 401.
    junk = httpx.post(f"{collector.url}/api/v1/batches", content=b"\x00",
                      headers={"content-type": "application/x-msgpack"})
    assert junk.status_code == 400
    name, token = create_token(collector.store, "engineer", "laptop")
    url = f"{collector.url}/api/v1/windows"
    assert httpx.get(url, headers=bearer(token)).status_code == 200
    assert collector.store.revoke_token(name) is True
    assert httpx.get(url, headers=bearer(token)).status_code == 401
    assert collector.store.revoke_token(name) is False


def test_openapi_declares_the_bearer_scheme(collector: Collector) -> None:
    spec = httpx.get(f"{collector.url}/openapi.json").json()
    assert spec["components"]["securitySchemes"]["HTTPBearer"]["scheme"] == "bearer"
    assert spec["paths"]["/api/v1/windows"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in spec["paths"]["/api/v1/health"]["get"]


def test_store_keeps_only_the_hash(tmp_path: Path) -> None:
    # SQLite only: it reads the store's file bytes back (no token in them).
    store = Store(tmp_path / "c.sqlite")
    name, token = create_token(store, "reader")
    again, other = create_token(store, "reader")
    assert (name, again) == ("reader-1", "reader-2") and token != other
    assert token.startswith(PREFIX) and len(token) == len(PREFIX) + 43
    [first, _] = store.tokens()
    assert first.hash == token_hash(token) and first.role == "reader"
    with pytest.raises(ValueError, match="exists"):
        create_token(store, "engineer", "reader-1")
    with pytest.raises(ValueError, match="token name"):
        create_token(store, "engineer", "has space")
    store.close()
    raw = b"".join(p.read_bytes() for p in tmp_path.iterdir())
    assert token.encode() not in raw and other.encode() not in raw
    assert token_hash(token).encode() in raw


def test_auth_off_serves_without_token(
    tmp_path: Path, store_location: Callable[[str], Path | str]
) -> None:
    (tmp_path / "site.toml").write_text(SITE_TOML)
    store = Store(store_location("c"))
    app = create_app(store, Ingest(store, {}, 1 << 20), load_site(tmp_path / "site.toml"),
                     auth=False)
    try:
        with serve(app) as url:
            r = httpx.post(f"{url}/api/v1/windows", json={"kind": "infrastructure"})
            assert r.status_code == 201
            assert len(httpx.get(f"{url}/api/v1/windows").json()) == 1
    finally:
        store.close()


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "localhost", "127.0.0.2"])
def test_auth_may_be_off_on_loopback(tmp_path: Path, host: str) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(f'[collector]\nhost = "{host}"\nauth = false\n')
    assert config.load(path).collector.auth is False


@pytest.mark.parametrize("host", ["0.0.0.0", "::", "10.1.2.3", "collector.example"])
def test_auth_off_elsewhere_is_a_config_error(tmp_path: Path, host: str) -> None:
    path = tmp_path / "collector.toml"
    path.write_text(f'[collector]\nhost = "{host}"\nauth = false\n')
    with pytest.raises(ConfigError, match=r"auth = false is allowed only when host is a loopback"):
        config.load(path)
    path.write_text(f'[collector]\nhost = "{host}"\n')
    assert config.load(path).collector.auth is True


def test_list_filters(collector: Collector) -> None:
    base = f"{collector.url}/api/v1/windows"
    spans = [("infrastructure", "2026-01-01T00:00:00Z", "2026-01-02T00:00:00Z"),
             ("general", "2026-01-03T00:00:00Z", "2026-01-04T00:00:00Z"),
             ("infrastructure", "2026-01-05T00:00:00Z", None),
             ("ai", "2026-01-04T12:00:00Z", None)]
    ids = []
    with collector.http() as eng:
        for kind, start, end in spans:
            w = eng.post(base, json={"kind": kind, "start": start}).json()
            if end:
                eng.post(f"{base}/{w['id']}/stop", json={"end": end}).raise_for_status()
            ids.append(w["id"])
    a, b, c, d = ids

    with collector.http("reader") as reader:
        def listed(**params: str) -> list[int]:
            r = reader.get(base, params=params)
            assert r.status_code == 200, r.text
            return [w["id"] for w in r.json()]

        assert listed() == [d, c, b, a]
        assert listed(kind="infrastructure") == [c, a]
        assert listed(state="open") == [d, c]
        assert listed(state="closed", kind="general") == [b]
        # since/until select the windows overlapping the span; open ones reach to now
        assert listed(since="2026-01-03T12:00:00Z") == [d, c, b]
        assert listed(until="2026-01-03T00:00:00Z") == [b, a]
        assert listed(since="2026-01-02T00:00:01Z", until="2026-01-04T06:00:00+08:00") == [b]
        assert listed(since="2027-01-01T00:00:00Z", state="closed") == []
        for params, words in [
            ({"kind": "hourly"}, "kind 'hourly' is not one of infrastructure, general, ai"),
            ({"state": "ajar"}, "state 'ajar' is not one of open, closed"),
            ({"since": "yesterday"}, "since 'yesterday' is not an RFC 3339 time"),
            ({"until": "2026-01-01T00:00:00"}, "until '2026-01-01T00:00:00' is not an RFC 3339"),
        ]:
            r = reader.get(base, params=params)
            assert r.status_code == 422 and words in r.json()["detail"], r.text
