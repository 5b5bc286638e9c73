"""The OpenAPI schema and the docs page, served by a running collector on a real socket."""

from __future__ import annotations

import httpx
from conftest import Collector

EXPECTED = {
    "/api/v1/batches": {"post"},
    "/api/v1/windows": {"get", "post"},
    "/api/v1/windows/{wid}": {"get"},
    "/api/v1/windows/{wid}/stop": {"post"},
    "/api/v1/windows/{wid}/reevaluate": {"post"},
    "/api/v1/windows/{wid}/revisions": {"get"},
    "/api/v1/windows/{wid}/report": {"get"},
    "/api/v1/windows/{wid}/runs": {"get", "post"},
    "/api/v1/sources": {"get"},
    "/api/v1/sources/{source}/owner": {"post"},
    "/api/v1/health": {"get"},
    "/metrics": {"get"},
}


def test_schema_lists_every_route_with_its_documentation(collector: Collector) -> None:
    r = httpx.get(f"{collector.url}/openapi.json")
    assert r.status_code == 200 and r.headers["content-type"] == "application/json"
    schema = r.json()
    assert schema["openapi"].startswith("3.") and schema["info"]["title"] == "dcmeter collector"
    paths = schema["paths"]
    missing = {p: m - set(paths.get(p, {})) for p, m in EXPECTED.items()}
    assert not any(missing.values()), f"not in the schema: {missing}"
    for path, methods in EXPECTED.items():
        for method in methods:
            op = paths[path][method]
            assert op.get("summary") and op.get("description"), f"{method} {path} undocumented"
    batches = paths["/api/v1/batches"]["post"]
    assert {"200", "400", "401", "403", "409", "413", "415"} <= set(batches["responses"])
    assert "application/x-msgpack" in batches["requestBody"]["content"]
    assert "text/plain" in paths["/metrics"]["get"]["responses"]["200"]["content"]
    # A window's result documents its `revision` block (collectors/results/frozen.py).
    result = paths["/api/v1/windows/{wid}"]["get"]["responses"]["200"]["content"]
    assert result["application/json"]["schema"]["$ref"].endswith("/WindowResult")
    schemas = schema["components"]["schemas"]
    assert {"revision", "conforming", "deviations", "verdict"} <= set(
        schemas["WindowResult"]["properties"])
    assert set(schemas["ResultRevision"]["properties"]) == {
        "number", "computed_at", "site_sha256", "software", "reason", "by"}
    get = paths["/api/v1/windows/{wid}"]["get"]
    assert "revision" in {p["name"] for p in get["parameters"]}


def test_docs_page_is_served(collector: Collector) -> None:
    r = httpx.get(f"{collector.url}/docs")
    assert r.status_code == 200 and "/openapi.json" in r.text
