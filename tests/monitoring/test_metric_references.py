"""Dashboard panels and rule expressions use only metrics (and labels) the gateway exposes.

The exposed names come from app.metrics.definitions itself, so renaming a
metric, a label or a chat outcome there breaks this test until monitoring/
follows."""
import json
import re
from pathlib import Path

import pytest
import yaml

from app.metrics import definitions
from tests.monitoring import promql_refs

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "ai-chat-gateway.json"
RULE_FILES = sorted((ROOT / "monitoring" / "prometheus" / "rules").glob("*.rules.yml"))

EXPOSED = promql_refs.exposed_series(definitions)
ENUMS = {"outcome": set(definitions.CHAT_OUTCOMES)}


def walk_panels(panels):
    for panel in panels:
        yield panel
        yield from walk_panels(panel.get("panels", []))


def dashboard_queries():
    """(where, PromQL, labels the legend uses) for every panel target and query variable."""
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in walk_panels(dashboard["panels"]):
        for target in panel.get("targets", []):
            legend_labels = set(re.findall(r"\{\{\s*(\w+)\s*\}\}", target.get("legendFormat", "")))
            yield f"panel {panel['title']!r} {target['refId']}", target["expr"], legend_labels
    for variable in dashboard["templating"]["list"]:
        if variable["type"] != "query":
            continue
        query = variable["query"]["query"] if isinstance(variable["query"], dict) else variable["query"]
        match = re.fullmatch(r"label_values\((.+),\s*(\w+)\)", query.strip())
        assert match, f"variable {variable['name']}: unexpected query {query!r}"
        yield f"variable ${variable['name']}", match.group(1), {match.group(2)}


def rule_expressions():
    """(where, PromQL) for every rule expression and every query in an annotation template."""
    for path in RULE_FILES:
        for group in yaml.safe_load(path.read_text())["groups"]:
            for rule in group["rules"]:
                name = rule.get("alert") or rule.get("record")
                yield f"{path.name}: {name}", rule["expr"]
                for key, text in rule.get("annotations", {}).items():
                    for query in re.findall(r'query\s+"((?:[^"\\]|\\.)*)"', text):
                        yield f"{path.name}: {name} annotation {key}", query


def recorded_names() -> frozenset:
    return frozenset(
        rule["record"] for path in RULE_FILES for group in yaml.safe_load(path.read_text())["groups"]
        for rule in group["rules"] if "record" in rule
    )


def test_the_gateway_defines_the_metrics_monitoring_is_built_on():
    # A sanity check of the reader itself: if this fails, app.metrics.definitions changed shape.
    for name in ("http_requests_total", "http_request_duration_seconds_bucket", "chat_completions_total",
                 "chat_completion_tokens_total", "chat_time_to_first_token_seconds_bucket",
                 "http_requests_in_flight", "chat_completions_in_flight"):
        assert name in EXPOSED, name


def test_dashboard_queries_use_only_exposed_metrics_and_labels():
    problems = []
    queries = list(dashboard_queries())
    assert len(queries) >= 15
    for where, expr, legend_labels in queries:
        problems += [f"{where}: {p}" for p in promql_refs.check(expr, EXPOSED, extra_labels=legend_labels, enums=ENUMS)]
        assert promql_refs.parse(expr).selectors, f"{where}: selects no metric"
    assert problems == []


def test_dashboard_does_not_depend_on_recording_rules():
    # So it also works against an existing Prometheus that does not load our rules.
    for where, expr, _ in dashboard_queries():
        assert not promql_refs.parse(expr).metric_names & recorded_names(), where


def test_rule_expressions_use_only_exposed_metrics_and_labels():
    recorded = recorded_names()
    problems, seen = [], set()
    for where, expr in rule_expressions():
        problems += [f"{where}: {p}" for p in promql_refs.check(expr, EXPOSED, recorded=recorded, enums=ENUMS)]
        seen |= promql_refs.parse(expr).metric_names
    assert problems == []
    assert recorded - seen == set(), "recorded but unused"


def test_a_renamed_metric_label_or_outcome_is_caught():
    renamed = dict(EXPOSED)
    renamed["chat_completions_v2_total"] = renamed.pop("chat_completions_total")
    renamed["http_requests_total"] = renamed["http_requests_total"] - {"route", "status_code"} | {"endpoint", "code"}
    problems = [p for _, expr, legend in dashboard_queries() for p in promql_refs.check(expr, renamed, extra_labels=legend)]
    assert "unknown metric 'chat_completions_total'" in problems
    assert "http_requests_total has no label 'status_code'" in problems
    assert "label 'route' is on none of the metrics used" in problems

    problems = [p for _, expr in rule_expressions()
                for p in promql_refs.check(expr, EXPOSED, recorded=recorded_names(),
                                           enums={"outcome": ENUMS["outcome"] - {"timeout"} | {"deadline"}})]
    assert "chat_completions_total{outcome} has no value 'timeout'" in problems


@pytest.mark.parametrize("expr, names, labels", [
    ('up{job="ai-chat-gateway"} == 0', {"up"}, set()),
    ('sum by (job) (rate(http_requests_total{status_code=~"5.."}[5m])) or 0 * vector(1)', {"http_requests_total"}, {"job"}),
    ('histogram_quantile(0.95, sum(rate(a_bucket[$__rate_interval])) by (le, model)) > 2.5', {"a_bucket"}, {"le", "model"}),
    ('x:y:z > on (job) group_left (model) (14.4 * (1 - b)) and on(job) c offset 1h30m', {"x:y:z", "b", "c"}, {"job", "model"}),
    ('time() - {__name__="process_start_time_seconds", role="worker"}', {"process_start_time_seconds"}, set()),
    ('# a comment\nabsent(up{job="x"})', {"up"}, set()),
])
def test_reference_reader(expr, names, labels):
    refs = promql_refs.parse(expr)
    assert refs.metric_names == names
    assert refs.grouping_labels == labels


def test_reference_reader_refuses_what_it_cannot_read():
    with pytest.raises(ValueError):
        promql_refs.parse('rate(x[5m]) $ y')
    with pytest.raises(ValueError):
        promql_refs.parse('{job="x"}')


def test_the_process_collector_exposes_the_process_metrics_monitoring_uses():
    """The per-process series are computed at scrape time, not defined in definitions.py: check the collector."""
    import os

    process = pytest.importorskip("app.metrics.process", reason="the per-process collector is not written yet")
    samples = {}
    for family in process.GunicornProcessCollector(os.getpid).collect():
        for sample in family.samples:
            samples.setdefault(sample.name, set()).update(sample.labels)
    for name, labels in promql_refs.PROCESS_METRICS.items():
        assert samples.get(name) == set(labels), f"{name}: exposed with {samples.get(name)}"


def test_the_usage_collector_exposes_exactly_the_declared_usage_gauges():
    """The usage gauges are computed at scrape time from USAGE_GAUGES: check what the collector yields."""
    from app.metrics.usage import Snapshot, Totals, families

    snapshot = Snapshot(orgs=Totals(tokens={"org-1": 5, definitions.OTHER_ORG: 1},
                                    cost={"org-1": 0.5, definitions.OTHER_ORG: 0}),
                        api_keys=Totals(tokens={"key-1": 5, definitions.OTHER_ORG: 1},
                                        cost={"key-1": 0.5, definitions.OTHER_ORG: 0}))
    exposed = {}
    for family in families(snapshot):
        assert family.type == "gauge"
        for sample in family.samples:
            exposed.setdefault(sample.name, set()).update(sample.labels)
    assert exposed == {name: set(labels) for name, (_, labels) in definitions.USAGE_GAUGES.items()}
