"""observability/: Prometheus scrape config and alert rules, the collector, Grafana's dashboards.

Every metric an alert or a dashboard queries must be one the code under services/ declares (read
from the source: Counter, Gauge, Histogram and Summary calls), with the labels the query uses, so
renaming a metric or a label in the code fails here instead of leaving an empty panel or an alert
that can never fire.
"""

from __future__ import annotations

import ast
import json
import re
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.unit.deploy.test_compose import (
    REPO,
    SERVICES,
    compose,
    compose_service_of,
    service_settings_defaults,
)

OBSERVABILITY = REPO / "observability"
DASHBOARDS = OBSERVABILITY / "grafana" / "dashboards"
#: labels Prometheus adds to every scraped series
TARGET_LABELS = {"job", "instance"}
#: PromQL names that are not Alama metrics but may appear in queries
BUILTIN_METRICS = {"up"}
DURATION = re.compile(r"^(\d+(ms|s|m|h|d|w|y))+$")


@dataclass(frozen=True)
class Metric:
    name: str  # as declared
    kind: str  # counter, gauge, histogram, summary
    labels: frozenset[str]

    def series(self) -> dict[str, frozenset[str]]:
        """The series names Prometheus scrapes for it, with their labels."""
        if self.kind == "counter":
            base = self.name.removesuffix("_total")
            return {f"{base}_total": self.labels, f"{base}_created": self.labels}
        if self.kind == "histogram":
            return {
                f"{self.name}_bucket": self.labels | {"le"},
                f"{self.name}_sum": self.labels,
                f"{self.name}_count": self.labels,
            }
        if self.kind == "summary":
            return {
                self.name: self.labels | {"quantile"},
                f"{self.name}_sum": self.labels,
                f"{self.name}_count": self.labels,
            }
        return {self.name: self.labels}


@cache
def exported_series() -> dict[str, frozenset[str]]:
    """Series name -> label names of every metric declared under services/ (protos excluded)."""
    kinds = {"Counter": "counter", "Gauge": "gauge", "Histogram": "histogram", "Summary": "summary"}
    series: dict[str, frozenset[str]] = {}
    for path in sorted((REPO / "services").rglob("*.py")):
        if "protos" in path.parts:
            continue
        tree = ast.parse(path.read_text(), str(path))
        # module-level label lists shared by several metrics (`_LABELS = [...]`, `[*_LABELS, "x"]`)
        shared: dict[str, frozenset[str]] = {}
        for statement in tree.body:
            if isinstance(statement, ast.Assign) and len(statement.targets) == 1:
                target = statement.targets[0]
                if isinstance(target, ast.Name):
                    shared[target.id] = _label_names(statement.value, shared)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            func = node.func
            kind = kinds.get(func.id if isinstance(func, ast.Name) else getattr(func, "attr", ""))
            if kind is None or not node.args or not isinstance(node.args[0], ast.Constant):
                continue
            name = node.args[0].value
            if not isinstance(name, str):
                continue
            labels_node = node.args[2] if len(node.args) > 2 else None
            for keyword in node.keywords:
                if keyword.arg == "labelnames":
                    labels_node = keyword.value
            labels = _label_names(labels_node, shared) if labels_node else frozenset()
            series.update(Metric(name, kind, labels).series())
    return series


def _label_names(node: ast.expr, shared: dict[str, frozenset[str]]) -> frozenset[str]:
    """The label names a list or tuple literal holds, module-level names it unpacks resolved."""
    if isinstance(node, ast.Name):
        return shared.get(node.id, frozenset())
    names: set[str] = set()
    for elt in getattr(node, "elts", []):
        if isinstance(elt, ast.Constant) and isinstance(elt.value, str):
            names.add(elt.value)
        elif isinstance(elt, ast.Starred):
            names |= _label_names(elt.value, shared)
    return frozenset(names)


# ---- PromQL, read just enough ------------------------------------------------------------------

METRIC_REF = re.compile(r"\b(alama_[a-z0-9_]+)\b(\s*\{([^}]*)\})?")
MATCHER = re.compile(r"([a-zA-Z_][a-zA-Z0-9_]*)\s*(=~|!~|!=|=)\s*\"")
GROUPING = re.compile(r"\b(by|without)\s*\(([^)]*)\)")


def check_query(expr: str, where: str) -> None:
    """Each Alama metric exists, and every label the query names exists on one of its metrics."""
    series = exported_series()
    refs = METRIC_REF.findall(expr)
    uses_builtin = any(re.search(rf"\b{b}\b", expr) for b in BUILTIN_METRICS)
    assert refs or uses_builtin, f"{where}: queries no Alama metric: {expr}"
    known_labels: set[str] = set(TARGET_LABELS)
    for name, _braces, matchers in refs:
        assert name in series, f"{where}: {name} is not exported by any service ({expr})"
        labels = series[name] | TARGET_LABELS
        known_labels |= labels
        for label, _op in MATCHER.findall(matchers):
            assert label in labels, f"{where}: {name} has no label {label!r}"
    for _kind, grouping in GROUPING.findall(expr):
        for label in filter(None, (part.strip() for part in grouping.split(","))):
            assert label in known_labels, f"{where}: groups by {label!r}, no queried metric has it"


def test_the_metric_reader_sees_the_known_metrics() -> None:
    series = exported_series()
    assert series["alama_scoring_decisions_total"] == {"path", "band"}
    assert series["alama_http_request_seconds_bucket"] == {"route", "method", "le"}
    assert series["alama_drift_psi"] == {"subject", "model_version"}
    assert series["alama_events_consumed_total"] == {"service", "topic", "outcome"}
    assert "alama_audit_rows_appended_total" in series
    # label lists shared through a module-level name, and unpacked into a longer one
    assert series["alama_live_matured_loans"] == {"tenant", "model_version", "month"}
    assert series["alama_live_auc"] == {"tenant", "model_version", "month", "bound"}
    with pytest.raises(AssertionError):
        check_query("rate(alama_scoring_decision_total[5m])", "renamed metric")
    with pytest.raises(AssertionError):
        check_query('sum(alama_drift_psi{feature="x"})', "renamed label")
    with pytest.raises(AssertionError):
        check_query("sum by (feature) (alama_drift_psi)", "renamed label in by()")


# ---- alert rules -------------------------------------------------------------------------------


@cache
def alert_rules() -> list[dict[str, Any]]:
    document = yaml.safe_load((OBSERVABILITY / "alerts.yml").read_text())
    assert set(document) == {"groups"}
    rules: list[dict[str, Any]] = []
    group_names = [group["name"] for group in document["groups"]]
    assert len(group_names) == len(set(group_names)), "group names are unique"
    for group in document["groups"]:
        assert set(group) <= {"name", "interval", "rules", "labels", "limit"}
        assert group["rules"], group["name"]
        rules += group["rules"]
    return rules


def test_alert_rules_are_well_formed() -> None:
    names = [rule["alert"] for rule in alert_rules()]
    assert len(names) == len(set(names)), "alert names are unique"
    for rule in alert_rules():
        assert set(rule) <= {"alert", "expr", "for", "keep_firing_for", "labels", "annotations"}
        assert re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", rule["alert"])
        assert isinstance(rule["expr"], str) and rule["expr"].strip()
        if "for" in rule:
            assert DURATION.match(rule["for"]), rule["alert"]
        assert rule["labels"]["severity"] in {"info", "warning", "critical"}, rule["alert"]
        assert rule["annotations"]["summary"], rule["alert"]
        assert rule["expr"].count("(") == rule["expr"].count(")"), rule["alert"]
        for text in rule["annotations"].values():
            assert text.count("{{") == text.count("}}"), rule["alert"]


def test_alert_rules_query_metrics_the_services_export() -> None:
    for rule in alert_rules():
        check_query(rule["expr"], f"alert {rule['alert']}")


def _expr_of(*needles: str) -> str:
    matches = [r["expr"] for r in alert_rules() if all(n in r["expr"] for n in needles)]
    assert matches, f"no alert rule mentions all of {needles}"
    return " ".join(matches[0].split())


def test_the_alerts_the_operators_asked_for_exist() -> None:
    latency = _expr_of("histogram_quantile(0.95", "alama_http_request_seconds_bucket")
    assert latency.endswith("> 0.2")
    errors = _expr_of('alama_http_requests_total{status=~"5.."}')
    assert errors.endswith("> 0.01")
    assert _expr_of("alama_drift_psi").endswith("> 0.25")
    lag = _expr_of("deriv(alama_consumer_lag[10m])")
    assert "> 0" in lag and re.search(
        r"sum by \(service, topic\) \(alama_consumer_lag\) > \d+", lag
    )
    assert _expr_of("alama_scoring_undelivered_decisions_total").endswith("> 0")
    _expr_of('alama_events_consumed_total{outcome="dead_lettered"}')
    # live performance on matured loans, judged only from 200 matured loans of a month on
    auc = _expr_of('alama_live_auc{bound="estimate"}', "alama_model_reference_auc")
    assert re.search(
        r'alama_live_auc\{bound="estimate"\} < on\(model_version\) group_left 0\.95 \* '
        r"max by \(model_version\) \(alama_model_reference_auc\)",
        auc,
    ), auc
    ece = _expr_of('alama_live_ece{bound="estimate"}')
    assert 'alama_live_ece{bound="estimate"} > 0.02' in ece
    for expr in (auc, ece):
        assert expr.endswith(
            "and on(tenant, model_version, month) alama_live_matured_loans >= 200"
        ), expr
    watched = re.search(r'job=~"([^"]+)"', _expr_of("up{job=~"))
    assert watched and {"drift", "outcomes"} <= set(watched[1].split("|"))


# ---- Prometheus, the collector, compose wiring -------------------------------------------------


def test_prometheus_scrapes_every_service_on_its_metrics_port() -> None:
    config = yaml.safe_load((OBSERVABILITY / "prometheus.yml").read_text())
    for rule_file in config["rule_files"]:
        assert (OBSERVABILITY / rule_file).is_file()
    targets = {
        target
        for job in config["scrape_configs"]
        for static in job.get("static_configs", [])
        for target in static["targets"]
    }
    jobs = [job["job_name"] for job in config["scrape_configs"]]
    assert len(jobs) == len(set(jobs))
    for name in SERVICES:
        key, _ = compose_service_of(name)
        defaults = service_settings_defaults(name)
        # the gateway's operator port, not the API's; the console has none: its http port
        port = defaults["metrics_port"] or defaults["port"]
        assert f"{key}:{port}" in targets, f"nothing scrapes {name}"
    assert "otel-collector:8888" in targets


def test_compose_mounts_the_observability_config_where_the_servers_read_it() -> None:
    services = compose()["services"]
    prometheus = services["prometheus"]
    assert (
        "./observability/prometheus.yml:/etc/prometheus/prometheus.yml:ro" in prometheus["volumes"]
    )
    assert "./observability/alerts.yml:/etc/prometheus/alerts.yml:ro" in prometheus["volumes"]
    assert "--config.file=/etc/prometheus/prometheus.yml" in prometheus["command"]
    collector = services["otel-collector"]
    mounts = dict(v.rsplit(":", 1)[0].split(":", 1) for v in collector["volumes"])
    config_path = collector["command"][0].removeprefix("--config=")
    assert mounts["./observability/otel-collector.yaml"] == config_path
    grafana_mounts = dict(
        v.rsplit(":", 1)[0].split(":", 1)
        for v in services["grafana"]["volumes"]
        if v.startswith("./")
    )
    assert grafana_mounts["./observability/grafana/provisioning"] == "/etc/grafana/provisioning"
    provider = yaml.safe_load(
        (OBSERVABILITY / "grafana/provisioning/dashboards/alama.yaml").read_text()
    )["providers"][0]
    assert grafana_mounts["./observability/grafana/dashboards"] == provider["options"]["path"]


def test_collector_receives_otlp_and_sends_traces_to_jaeger() -> None:
    config = yaml.safe_load((OBSERVABILITY / "otel-collector.yaml").read_text())
    grpc_endpoint = config["receivers"]["otlp"]["protocols"]["grpc"]["endpoint"]
    assert grpc_endpoint.endswith(":4317")
    pipeline = config["service"]["pipelines"]["traces"]
    for kind in ("receivers", "processors", "exporters"):
        for component in pipeline[kind]:
            assert component in config[kind], f"{kind[:-1]} {component} is used but not defined"
    assert "batch" in pipeline["processors"]
    for extension in config["service"].get("extensions", []):
        assert extension in config["extensions"]
    exporter = config["exporters"][pipeline["exporters"][0]]
    services = compose()["services"]
    endpoint = re.sub(r"\$\{env:(\w+):-([^}]*)\}", r"\2", exporter["endpoint"])
    assert endpoint.split(":")[0] in services and endpoint.endswith(":4317")
    assert services["jaeger"]["environment"]["COLLECTOR_OTLP_ENABLED"] == "true"
    for name in SERVICES:
        _, svc = compose_service_of(name)
        host, port = svc["environment"]["ALAMA_OTLP_ENDPOINT"].split(":")
        assert host == "otel-collector" and port == grpc_endpoint.rsplit(":", 1)[1]


# ---- Grafana -----------------------------------------------------------------------------------


def dashboards() -> list[Path]:
    found = sorted(DASHBOARDS.glob("*.json"))
    assert found, "no dashboards"
    return found


def _panels(board: dict[str, Any]) -> list[dict[str, Any]]:
    panels = []
    for panel in board["panels"]:
        panels.append(panel)
        panels += panel.get("panels", [])  # collapsed rows
    return panels


def test_grafana_datasources_are_provisioned() -> None:
    config = yaml.safe_load(
        (OBSERVABILITY / "grafana/provisioning/datasources/alama.yaml").read_text()
    )
    by_uid = {ds["uid"]: ds for ds in config["datasources"]}
    assert by_uid["prometheus"]["type"] == "prometheus" and by_uid["prometheus"]["isDefault"]
    services = compose()["services"]
    for ds in config["datasources"]:
        host = re.match(r"https?://([^:/]+)", ds["url"])
        assert host and host.group(1) in services, ds["name"]


@pytest.mark.parametrize("path", dashboards(), ids=lambda p: p.name)
def test_dashboard_is_valid_and_queries_exported_metrics(path: Path) -> None:
    board = json.loads(path.read_text())
    assert board["uid"] == path.stem and board["title"].startswith("Alama / ")
    variables = {v["name"] for v in board["templating"]["list"]}
    ids = [panel["id"] for panel in _panels(board)]
    assert len(ids) == len(set(ids)), "panel ids are unique"
    for panel in _panels(board):
        if panel["type"] == "row":
            continue
        where = f"{path.name}: {panel['title']}"
        assert panel["targets"], where
        uid = panel["datasource"]["uid"]
        assert uid == "prometheus" or uid.strip("${}") in variables, where
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24, where
        for target in panel["targets"]:
            check_query(target["expr"], where)


def test_dashboard_uids_are_unique() -> None:
    uids = [json.loads(p.read_text())["uid"] for p in dashboards()]
    assert len(uids) == len(set(uids))


def test_the_dashboards_the_operators_asked_for_exist() -> None:
    queries = [
        " ".join(t["expr"].split())
        for path in dashboards()
        for panel in _panels(json.loads(path.read_text()))
        for t in panel.get("targets", [])
    ]

    def some(*needles: str) -> None:
        assert any(all(n in q for n in needles) for q in queries), f"no panel queries {needles}"

    for quantile in ("0.5", "0.95", "0.99"):
        some(f"histogram_quantile({quantile}", "alama_http_request_seconds_bucket")
    some("rate(alama_http_requests_total")
    some("sum by (band)", "alama_scoring_decisions_total")
    some("alama_consumer_lag")
    some("topk(10", "alama_drift_psi")
    some("alama_drift_psi", 'subject=~"score|band"')
    some('outcome="dead_lettered"')
    some("alama_audit_rows_appended_total")
    # live performance (services/outcomes): AUC with its bounds per bundle and month beside the
    # reference, ECE, default rate per band, matured loans
    for bound in ("estimate", "low", "high"):
        some(f'alama_live_auc{{bound="{bound}"}}', "model_version, month")
    some("alama_model_reference_auc")
    some('alama_live_ece{bound="estimate"}', "model_version, month")
    some("alama_live_band_default_rate", "band")
    some("alama_live_matured_loans", "model_version, month")


def test_every_alert_has_a_promtool_unit_test() -> None:
    """observability/alerts_test.yml (`promtool test rules`) raises each alert at least once."""
    tests = yaml.safe_load((OBSERVABILITY / "alerts_test.yml").read_text())
    assert tests["rule_files"] == ["alerts.yml"]
    raised = {
        case["alertname"]
        for test in tests["tests"]
        for case in test["alert_rule_test"]
        if case["exp_alerts"]
    }
    assert raised == {rule["alert"] for rule in alert_rules()}
    for test in tests["tests"]:
        for series in test["input_series"]:
            check_query(series["series"], "alerts_test.yml input series")
