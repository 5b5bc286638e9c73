"""contrib/grafana/dcmeter-collector.json: valid for Grafana's dashboard model, and every query
names only metrics that a real collector's /metrics exposes.

The schema is Grafana Labs' own, as the `grafana-foundation-sdk` package (PyPI) carries it: its
models are generated from Grafana's dashboard kind (CUE) and the panel plugins' schemas. The
models' `from_json` takes anything, so the check walks the JSON against the models' type hints:
an unknown field, a wrong type or an enum value outside the schema is an error. The PromQL is
parsed twice, by `promql-parser` (PyPI) and by `promtool check rules` (every expression as a
recording rule). contrib/grafana/README.md says why these.
"""

from __future__ import annotations

import copy
import enum
import importlib
import inspect
import json
import re
import shutil
import subprocess
import types
import typing
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import promql_parser
import pytest
from conftest import serve
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from grafana_foundation_sdk.cog.variants import Dataquery
from grafana_foundation_sdk.models import dashboard as gd
from grafana_foundation_sdk.models import prometheus as gprom
from prometheus_client.parser import text_string_to_metric_families

from dcmeter.agent import wire
from dcmeter.agent.samples import MetricSpec, SourceInfo
from dcmeter.agent.wire import GENESIS, Batch, ClockStatus, MetricEntry
from dcmeter.collectors.evaluation.site import load_site
from dcmeter.collectors.intake.ingest import Ingest
from dcmeter.collectors.storage.store import Store
from dcmeter.collectors.web.api import create_app

DASHBOARD = Path(__file__).parent.parent / "contrib" / "grafana" / "dcmeter-collector.json"

# ---------------------------------------------------------------- the dashboard model check


@cache
def json_names(cls: type) -> dict[str, str]:
    """JSON field name -> attribute of a model class, read from its generated `from_json` and
    `to_json` (`if "gridPos" in data: args["grid_pos"] = …`): exact, whatever the spelling."""
    src = inspect.getsource(cls.from_json)  # type: ignore[attr-defined]
    names = dict(re.findall(r'if "([^"]+)" in data:\s*\n(?:.*\n)*?\s*args\["(\w+)"\]', src))
    # Constant discriminators ("type": "row") are written by to_json but not read back.
    out = inspect.getsource(cls.to_json)  # type: ignore[attr-defined]
    names |= dict(re.findall(r'"(\w+)"\]? ?[:=] ?self\.(\w+)', out))
    return names


def is_model(hint: Any) -> bool:
    return inspect.isclass(hint) and hasattr(hint, "from_json") and hasattr(hint, "to_json")


def check(value: Any, hint: Any, path: str, errors: list[str]) -> None:
    """Append to `errors` where `value` does not conform to the type `hint` of the models."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if hint is typing.Any or hint is object:
        return  # plugin-specific (options, custom): checked by the plugin's own model below
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return
        tries: list[list[str]] = []
        for branch in (a for a in args if a is not type(None)):
            errs: list[str] = []
            check(value, branch, path, errs)
            if not errs:
                return
            tries.append(errs)
        if not tries:
            errors.append(f"{path}: no type in {hint!r}")
            return
        best: list[str] = min(tries, key=len)  # the branch it came nearest to
        errors.extend(best)
    elif origin is typing.Literal:
        if value not in args:
            errors.append(f"{path}: {value!r} not one of {args}")
    elif origin is list:
        if not isinstance(value, list):
            errors.append(f"{path}: not a list")
            return
        for i, item in enumerate(value):
            check(item, args[0], f"{path}[{i}]", errors)
    elif origin is dict:
        if not isinstance(value, dict):
            errors.append(f"{path}: not an object")
            return
        for k, item in value.items():
            check(item, args[1], f"{path}.{k}", errors)
    elif inspect.isclass(hint) and issubclass(hint, enum.Enum):
        if value not in {m.value for m in hint}:
            errors.append(f"{path}: {value!r} not one of {[m.value for m in hint]}")
    elif hint is bool:
        if not isinstance(value, bool):
            errors.append(f"{path}: {value!r} is not a boolean")
    elif hint is int:
        if not isinstance(value, int) or isinstance(value, bool):
            errors.append(f"{path}: {value!r} is not an integer")
    elif hint is float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            errors.append(f"{path}: {value!r} is not a number")
    elif hint is str:
        if not isinstance(value, str):
            errors.append(f"{path}: {value!r} is not a string")
    elif hint is Dataquery:  # a data source plugin's query: every target here is Prometheus
        check_model(value, gprom.Dataquery, path, errors)
    elif is_model(hint):
        check_model(value, hint, path, errors)
    else:
        raise AssertionError(f"{path}: no rule for the type {hint!r}")  # the SDK changed


def check_model(value: Any, cls: type, path: str, errors: list[str]) -> None:
    """A JSON object against a model class: no field the model lacks, every field's type."""
    if not isinstance(value, dict):
        errors.append(f"{path}: not an object ({cls.__name__})")
        return
    names, hints = json_names(cls), typing.get_type_hints(cls)
    for key, item in value.items():
        if key not in names:
            errors.append(f"{path}.{key}: no such field in {cls.__name__}")
        else:
            check(item, hints[names[key]], f"{path}.{key}", errors)


def panel_plugin(kind: str) -> types.ModuleType | None:
    """The SDK's models of a panel plugin (Options, FieldConfig), None for a row."""
    try:
        return importlib.import_module(f"grafana_foundation_sdk.models.{kind}")
    except ModuleNotFoundError:
        return None


def dashboard_errors(doc: dict[str, Any]) -> list[str]:
    """Every way `doc` (an exported dashboard) departs from Grafana's dashboard schema."""
    errors: list[str] = []
    body = {k: v for k, v in doc.items() if k not in ("__inputs", "__requires")}
    check_model(body, gd.Dashboard, "$", errors)
    # The export envelope: the inputs Grafana asks for on import, declared for what is used.
    declared = {i.get("name") for i in doc.get("__inputs", []) if i.get("type") == "datasource"}
    used = set(re.findall(r"\$\{(DS_\w+)\}", json.dumps(body)))
    errors += [f"__inputs: {name} used but not declared" for name in sorted(used - declared)]
    ids = []
    for p in walk_panels(body):
        path = f"panel {p.get('id')} {p.get('title')!r}"
        kind = p.get("type")
        if not isinstance(kind, str) or not kind:
            errors.append(f"{path}: no type")
            continue
        ids.append(p.get("id"))
        for key in ("id", "gridPos", "title"):
            if key not in p:
                errors.append(f"{path}: no {key}")
        grid = p.get("gridPos", {})
        x, w = (grid.get(k, 0) if isinstance(grid, dict) else 0 for k in "xw")
        if isinstance(x, int) and isinstance(w, int) and x + w > 24:
            errors.append(f"{path}: gridPos past the 24 columns")
        if kind == "row":
            continue
        plugin = panel_plugin(kind)
        if plugin is None:
            errors.append(f"{path}: no panel plugin {kind!r} in the SDK")
            continue
        check_model(p.get("options", {}), plugin.Options, f"{path}.options", errors)
        custom = p.get("fieldConfig", {}).get("defaults", {}).get("custom")
        if custom is not None and hasattr(plugin, "FieldConfig"):
            check_model(custom, plugin.FieldConfig, f"{path}.fieldConfig.defaults.custom", errors)
        for j, t in enumerate(p.get("targets", [])):
            if not isinstance(t, dict) or not t.get("expr"):
                errors.append(f"{path}.targets[{j}]: no expr")
    if len(ids) != len(set(ids)):
        errors.append("panel ids not unique")
    return errors


def walk_panels(doc: dict[str, Any]) -> Iterator[dict[str, Any]]:
    for p in doc.get("panels", []):
        if isinstance(p, dict):
            yield p
            yield from (q for q in p.get("panels", []) if isinstance(q, dict))


# ---------------------------------------------------------------- the queries

# Grafana's own variables, replaced as a query runs; their stand-ins only have to parse.
BUILTINS = {"__rate_interval": "4m", "__interval": "1m", "__range": "24h"}


def expressions(doc: dict[str, Any]) -> list[tuple[str, str]]:
    """(where, PromQL) of every panel target, template variables replaced by stand-ins."""
    variables = {v["name"]: ".*" for v in doc["templating"]["list"]} | BUILTINS
    out = []
    for p in walk_panels(doc):
        for t in p.get("targets", []):
            out.append((f"panel {p.get('id')} {t.get('refId')}", substitute(t["expr"], variables)))
    for v in doc["templating"]["list"]:
        q = v["query"]["query"] if isinstance(v["query"], dict) else v["query"]
        m = re.fullmatch(r"label_values\((.+),\s*\w+\)", q)  # Grafana's, not PromQL: the selector is
        assert m, f"variable {v['name']}: query {q!r} not label_values(selector, label)"
        out.append((f"variable {v['name']}", substitute(m.group(1), variables)))
    return out


def substitute(expr: str, variables: dict[str, str]) -> str:
    def one(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2)
        if name not in variables:
            raise AssertionError(f"{expr!r}: unknown variable ${name}")
        return variables[name]
    return re.sub(r"\$\{(\w+)(?::\w+)?\}|\$(\w+)", one, expr)


def metric_names(expr: str) -> set[str]:
    """The metric names of every selector in `expr`, by promql-parser's syntax tree."""
    names: set[str] = set()

    def visit(node: Any) -> bool:
        if isinstance(node, promql_parser.VectorSelector):
            name = node.name or next((m.value for m in node.matchers.matchers
                                      if m.name == "__name__"), None)
            assert name, f"{expr!r}: a selector without a metric name"
            names.add(name)
        return True

    promql_parser.walk(promql_parser.parse(expr), visit)
    return names


def unknown_metrics(exprs: list[tuple[str, str]], exposed: set[str]) -> list[str]:
    """Where an expression names no metric, or one that `exposed` lacks."""
    out = []
    for where, e in exprs:
        names = metric_names(e)
        if not names:
            out.append(f"{where}: {e!r} names no metric")
        elif names - exposed:
            out.append(f"{where}: {sorted(names - exposed)} not exposed by /metrics")
    return out


def promtool_rules(exprs: list[tuple[str, str]], tmp_path: Path) -> str:
    """`promtool check rules` over every expression as a recording rule; its report on failure."""
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.fail("promtool not found: install the Debian package prometheus (.ci/run does)")
    rules = {"groups": [{"name": "dashboard", "rules": [
        {"record": f"dashboard:query_{i}", "expr": e} for i, (_, e) in enumerate(exprs)]}]}
    path = tmp_path / "rules.json"  # JSON is YAML: no YAML writer needed
    path.write_text(json.dumps(rules))
    out = subprocess.run([promtool, "check", "rules", str(path)], capture_output=True, timeout=60)
    return "" if out.returncode == 0 else (out.stdout + out.stderr).decode()


# ---------------------------------------------------------------- a real collector

NOW = 1_772_452_800.0  # 2026-03-02T12:00:00Z, the collector's clock
SITE = """
[site]
name = "grafana site"
region = "east-2023"

[energy]
total = ["meter-total"]
it = ["meter-it"]
it_point = "it_pdu"
"""
GROUPS = {"compute": "host-1", "storage": "array-1", "network": "switch-1"}
SITE += "".join(f"""
[[general.groups]]
name = "{kind}"
kind = "{kind}"
count = 1
rating = 1000
rating_source = "test figure"
sources = ["{src}"]
""" for kind, src in GROUPS.items())


def batch(agent: str, seq: int, prev: bytes) -> Batch:
    """An hour of samples, one a minute, ending 60 s before NOW: meter counters (200 kW
    total, 100 kW IT) and a 50 % CPU gauge of each device."""
    sources = [SourceInfo("meter-total", "modbus", "m/1"), SourceInfo("meter-it", "modbus", "m/2")]
    sources += [SourceInfo(src, "host", src, {"kind": kind}) for kind, src in GROUPS.items()]
    metrics = [MetricEntry(MetricSpec("energy_import_kwh", "kWh", "counter")),
               MetricEntry(MetricSpec("cpu_util_pct", "%"))]
    ts, src, met, val = [], [], [], []
    for k in range(61):
        t = NOW - 3660 + 60 * k
        for s, m, v in [(0, 0, 200 * k / 60), (1, 0, 100 * k / 60), (2, 1, 50.0), (3, 1, 50.0),
                        (4, 1, 50.0)]:
            ts.append(int(t * 1e9))
            src.append(s)
            met.append(m)
            val.append(v)
    return Batch(agent, seq, prev, ts[-1] + 1, ClockStatus(synced=True), sources, metrics,
                 *wire.pack_arrays(ts, src, met, val))


@dataclass
class Scrape:
    names: set[str]  # every sample name /metrics exposed
    text: str


@pytest.fixture(scope="module")
def scrape(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Scrape]:
    """/metrics of a real collector on a socket after a signed batch and a refused one."""
    tmp = tmp_path_factory.mktemp("grafana")
    (tmp / "site.toml").write_text(SITE)
    store = Store(tmp / "collector.db")
    key = Ed25519PrivateKey.generate()
    ingest = Ingest(store, {"agent-1": key.public_key()}, max_bytes=1 << 20)
    app = create_app(store, ingest, load_site(tmp / "site.toml"), clock=lambda: int(NOW * 1e9))
    ct = {"content-type": "application/x-msgpack"}
    try:
        with serve(app) as url:
            r = httpx.post(f"{url}/api/v1/batches", content=wire.seal(batch("agent-1", 1, GENESIS),
                                                                       key), headers=ct)
            assert r.status_code == 200, r.text
            r = httpx.post(f"{url}/api/v1/batches", content=b"not msgpack", headers=ct)
            assert r.status_code == 400
            r = httpx.get(f"{url}/metrics")
            assert r.status_code == 200
            names = {s.name for f in text_string_to_metric_families(r.text) for s in f.samples}
            yield Scrape(names, r.text)
    finally:
        store.close()


# ---------------------------------------------------------------- the tests


def load() -> dict[str, Any]:
    doc: dict[str, Any] = json.loads(DASHBOARD.read_text())
    return doc


def test_dashboard_conforms_to_grafanas_dashboard_model() -> None:
    doc = load()
    assert dashboard_errors(doc) == []
    assert {p["type"] for p in walk_panels(doc)} >= {"row", "stat", "timeseries", "table"}
    # Imports into any Grafana: the data source is an input, never a uid of one instance.
    refs = [p["datasource"] for p in walk_panels(doc) if "datasource" in p]
    refs += [t["datasource"] for p in walk_panels(doc) for t in p.get("targets", [])]
    assert refs and all(r == {"type": "prometheus", "uid": "${DS_PROMETHEUS}"} for r in refs)
    assert [i["name"] for i in doc["__inputs"]] == ["DS_PROMETHEUS"]


def test_every_query_names_only_metrics_that_metrics_exposes(scrape: Scrape,
                                                             tmp_path: Path) -> None:
    exprs = expressions(load())
    assert len(exprs) >= 20
    used = {n for _, e in exprs for n in metric_names(e)}
    assert unknown_metrics(exprs, scrape.names) == []
    assert promtool_rules(exprs, tmp_path) == ""
    # What the operator needs at a glance is on the dashboard: all of /metrics but the
    # samples counter of ingest (the per-agent one is there).
    dcmeter = {n for n in scrape.names if n.startswith("dcmeter_")}
    assert dcmeter - used == {"dcmeter_ingest_samples_accepted_total"}


def test_a_broken_dashboard_fails(scrape: Scrape, tmp_path: Path) -> None:
    good = load()
    # An unknown metric: found by the name check, though both parsers accept it.
    doc = copy.deepcopy(good)
    panel = next(p for p in walk_panels(doc) if p["type"] == "stat")
    panel["targets"][0]["expr"] = 'dcmeter_site_power_watts{instance=~"$instance"}'
    exprs = expressions(doc)
    assert promtool_rules(exprs, tmp_path) == ""
    assert unknown_metrics(exprs, scrape.names) == [
        f"panel {panel['id']} A: ['dcmeter_site_power_watts'] not exposed by /metrics"]
    # A PromQL syntax error: refused by both parsers.
    bad = [("bad", "sum(rate(dcmeter_scrape_duration_seconds[5m])")]
    with pytest.raises(ValueError):
        promql_parser.parse(bad[0][1])
    assert "dashboard:query_0" in promtool_rules(bad, tmp_path)
    # A variable the dashboard does not define.
    doc = copy.deepcopy(good)
    panel = next(p for p in walk_panels(doc) if p["type"] == "stat")
    panel["targets"][0]["expr"] = 'dcmeter_pue_last_hour{instance=~"$site"}'
    with pytest.raises(AssertionError, match="unknown variable"):
        expressions(doc)
    # Invalid panels: an unknown field, a wrong type, a value outside an enum, a bad option.
    cases = {
        "gridPos.w": ("gridPos", {"h": 4, "w": "wide", "x": 0, "y": 0}),
        "no such field": ("colour", "red"),
        "not one of": ("repeatDirection", "diagonal"),
    }
    for expected, (key, value) in cases.items():
        doc = copy.deepcopy(good)
        next(p for p in walk_panels(doc) if p["type"] == "timeseries")[key] = value
        errors = dashboard_errors(doc)
        assert errors and any(expected in e for e in errors), (expected, errors)
    doc = copy.deepcopy(good)
    next(p for p in walk_panels(doc) if p["type"] == "stat")["options"]["colorMode"] = "rainbow"
    assert any("colorMode" in e for e in dashboard_errors(doc))
    doc = copy.deepcopy(good)
    doc["panels"][1]["datasource"]["uid"] = "${DS_PROM}"
    assert "__inputs: DS_PROM used but not declared" in dashboard_errors(doc)
    doc = copy.deepcopy(good)
    doc["panels"][2]["type"] = "no-such-panel"
    assert any("no panel plugin" in e for e in dashboard_errors(doc))
