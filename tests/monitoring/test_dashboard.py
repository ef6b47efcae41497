"""The Grafana dashboard and its provisioning: valid, complete, readable."""
import json
import re
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
GRAFANA = ROOT / "monitoring" / "grafana"
DASHBOARD_PATH = GRAFANA / "dashboards" / "ai-chat-gateway.json"


@pytest.fixture(scope="module")
def dashboard():
    return json.loads(DASHBOARD_PATH.read_text())


def panels(dashboard):
    out = []
    for panel in dashboard["panels"]:
        out.append(panel)
        out.extend(panel.get("panels", []))
    return [p for p in out if p["type"] != "row"]


def by_title(dashboard):
    return {panel["title"]: panel for panel in panels(dashboard)}


# Panel title -> (unit, words that must appear in one of its queries)
REQUIRED_PANELS = {
    "Target health": ("none", ["up{"]),
    "HTTP 5xx ratio": ("percentunit", ["http_requests_total", '"5.."']),
    "Request rate by route and method": ("reqps", ["http_requests_total", "by (method, route)"]),
    "p95 request latency by route": ("s", ["histogram_quantile(0.95", "http_request_duration_seconds_bucket", "route"]),
    "In-flight requests and streams": ("short", ["http_requests_in_flight", "chat_completions_in_flight"]),
    "p95 chat completion latency by model": ("s", ["histogram_quantile(0.95", "chat_completion_duration_seconds_bucket", "model"]),
    "p95 time to first token by model": ("s", ["histogram_quantile(0.95", "chat_time_to_first_token_seconds_bucket"]),
    "Tokens per second by model": ("suffix: tokens/s", ["chat_completion_tokens_total", "by (model, type)"]),
    "Chat outcomes": ("reqps", ["chat_completions_total", "by (outcome)"]),
    "Chat error ratio by model": ("percentunit", ["chat_completions_total", "client_disconnect"]),
    "Resident memory per process": ("bytes", ["process_resident_memory_bytes"]),
    "Tokens per hour by model": ("suffix: tokens/h", ["chat_completion_tokens_total", "by (model)"]),
    "Cost per hour by model": ("currencyUSD", ["chat_completion_cost_usd_total", "by (model)"]),
    "Top orgs by tokens this month": ("short", ["gateway_usage_month_tokens", "by (org)"]),
    "Top orgs by cost this month": ("currencyUSD", ["gateway_usage_month_cost_usd", "by (org)"]),
    "Budget used by org": ("percentunit", ["gateway_usage_budget_used_ratio", "by (org, limit)"]),
    "Top API keys by tokens this month": ("short", ["gateway_usage_api_key_month_tokens", "by (api_key)"]),
    "Top API keys by cost this month": ("currencyUSD", ["gateway_usage_api_key_month_cost_usd", "by (api_key)"]),
    "Upstream health": ("none", ["chat_upstream_up", "by (model, upstream)"]),
    "Calls per upstream": ("reqps", ["chat_upstream_requests_total", "by (model, upstream, outcome)"]),
    "p95 upstream time to answer": ("s", ["histogram_quantile(0.95", "chat_upstream_duration_seconds_bucket"]),
    "Failovers by reason": ("reqps", ["chat_failovers_total", "by (model, reason)"]),
}


def test_dashboard_identity(dashboard):
    assert dashboard["uid"] == "ai-chat-gateway"
    assert dashboard["title"]
    assert "id" not in dashboard or dashboard["id"] is None, "a provisioned dashboard must not carry a database id"


def test_required_panels_exist_with_units_and_queries(dashboard):
    titled = by_title(dashboard)
    for title, (unit, words) in REQUIRED_PANELS.items():
        assert title in titled, f"missing panel {title!r}"
        panel = titled[title]
        assert panel["fieldConfig"]["defaults"]["unit"] == unit, title
        exprs = " ".join(t["expr"] for t in panel["targets"])
        for word in words:
            assert word in exprs, f"{title}: {word!r} not in its queries"


def test_every_panel_has_a_unit_a_description_and_readable_legends(dashboard):
    for panel in panels(dashboard):
        title = panel["title"]
        assert panel["fieldConfig"]["defaults"].get("unit"), f"{title}: no unit"
        assert panel.get("description"), f"{title}: no description"
        assert panel["targets"], f"{title}: no query"
        for target in panel["targets"]:
            assert target["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, title
            legend = target.get("legendFormat", "")
            assert legend and legend != "__auto", f"{title}: set a legend, not the raw series"
            if re.search(r"\bby \(", target["expr"]) or "process_" in target["expr"]:
                assert "{{" in legend, f"{title}: the legend must name the series' labels"


def test_panel_ids_are_unique_and_the_grid_has_no_overlap(dashboard):
    everything = list(dashboard["panels"])
    ids = [p["id"] for p in everything]
    assert len(ids) == len(set(ids))
    cells = {}
    for panel in everything:
        grid = panel["gridPos"]
        assert 0 <= grid["x"] and grid["x"] + grid["w"] <= 24, panel["title"]
        for x in range(grid["x"], grid["x"] + grid["w"]):
            for y in range(grid["y"], grid["y"] + grid["h"]):
                assert (x, y) not in cells, f"{panel['title']} overlaps {cells[(x, y)]}"
                cells[(x, y)] = panel["title"]


def test_template_variables_for_datasource_job_instance_and_model(dashboard):
    variables = {v["name"]: v for v in dashboard["templating"]["list"]}
    assert variables["datasource"]["type"] == "datasource" and variables["datasource"]["query"] == "prometheus"
    for name in ("job", "instance", "model"):
        variable = variables[name]
        assert variable["type"] == "query" and variable["multi"] and variable["includeAll"], name
    # 'All' jobs are the jobs found, never ".*": other applications' http_requests_total must stay out.
    assert variables["job"]["query"]["query"] == "label_values(gateway_build_info, job)"
    assert "allValue" not in variables["job"]
    for name in ("instance", "model"):
        assert variables[name]["allValue"] == ".*", name
        assert 'job=~"$job"' in variables[name]["query"]["query"], name
    for panel in panels(dashboard):
        for target in panel["targets"]:
            assert 'job=~"$job"' in target["expr"], f"{panel['title']}: not filtered by $job"
            assert "ai-chat-gateway" not in target["expr"], panel["title"]
            assert 'instance=~"$instance"' in target["expr"], f"{panel['title']}: not filtered by $instance"
            if "chat_" in target["expr"] and "chat_completions_in_flight" not in target["expr"]:
                assert 'model=~"$model"' in target["expr"], f"{panel['title']}: not filtered by $model"
            if "rate(" in target["expr"]:
                assert "[$__rate_interval]" in target["expr"], panel["title"]


def test_provisioning_loads_the_datasource_and_the_dashboard():
    datasources = yaml.safe_load((GRAFANA / "provisioning" / "datasources" / "prometheus.yml").read_text())
    [source] = datasources["datasources"]
    assert source["type"] == "prometheus" and source["url"] == "http://prometheus:9090" and source["isDefault"]
    assert source["jsonData"]["timeInterval"] == "5s"

    providers = yaml.safe_load((GRAFANA / "provisioning" / "dashboards" / "ai-chat-gateway.yml").read_text())
    [provider] = providers["providers"]
    assert provider["type"] == "file"
    compose = yaml.safe_load((ROOT / "monitoring" / "docker-compose.yml").read_text())
    mounts = {}
    for volume in compose["services"]["grafana"]["volumes"]:
        source, target = volume.split(":")[:2]
        mounts[target] = source
    assert mounts[provider["options"]["path"]] == "./grafana/dashboards", "the provider must read the mounted dashboards"
    assert mounts["/etc/grafana/provisioning"] == "./grafana/provisioning"
