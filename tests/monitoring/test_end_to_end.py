"""The monitoring stack against the real gateway: gunicorn with several workers and the fake LLM
provider, scraped by a real Prometheus with the project's configuration (target rewritten to the
test's ports). Every dashboard query returns data, the target is up, every rule is loaded and healthy.

The same Prometheus also scrapes the gateway under another job name, as a Prometheus that already
exists would (a file_sd target group whose `job` label wins over the scrape config's job_name):
the dashboard and the rules must work for either job, with no job name written in them."""
import json
import math
import re
import time
from pathlib import Path

import pytest
import requests
import yaml

from bench.fake_model import FakeModelServer, Script
from tests.monitoring.prometheus_server import PROMETHEUS_DIR, Prometheus
from tests.support.servers import Gunicorn, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "monitoring" / "grafana" / "dashboards" / "ai-chat-gateway.json"
WORKERS = 3
TOKEN = "metrics-token-for-the-end-to-end-test"
OLLAMA_MODEL = "llama3.1"
OPENAI_MODEL = "gpt-test"
TOKENS = ["Hel", "lo", ",", " wor", "ld", "!"]
PROJECT_JOB, OTHER_JOB = "ai-chat-gateway", "api-gateway"
JOBS = (PROJECT_JOB, OTHER_JOB)


class Client:
    """A registered user talking to the gateway over HTTP."""

    def __init__(self, url: str):
        self.url = url
        self.session = requests.Session()
        response = self.session.post(f"{url}/auth/register", timeout=10, json={
            "email": f"monitoring-{time.monotonic_ns()}@example.com", "password": "correct horse battery"})
        assert response.status_code == 201, response.text
        self.session.headers["Authorization"] = f"Bearer {response.json()['accessToken']}"
        # An org with a budget, so the usage panels show a named org beside `other`.
        response = self.session.post(f"{url}/orgs", json={"name": "Monitoring"}, timeout=10)
        assert response.status_code == 201, response.text
        self.org = response.json()["id"]
        response = self.session.put(f"{url}/orgs/{self.org}/budget", timeout=10,
                                    json={"monthlyTokens": 1_000_000, "monthlyCostUsd": "100"})
        assert response.status_code == 200, response.text
        response = self.session.post(f"{url}/conversations", json={"title": "monitoring", "orgId": self.org}, timeout=10)
        assert response.status_code == 201, response.text
        self.conversation = response.json()["id"]
        # An API key, so the per-key usage panels show a named key beside `other`.
        response = self.session.post(f"{url}/api-keys", json={"name": "monitoring"}, timeout=10)
        assert response.status_code == 201, response.text
        self.api_key = response.json()

    def v1(self, model: str) -> None:
        response = requests.post(f"{self.url}/v1/chat/completions", timeout=30,
                                 headers={"Authorization": f"Bearer {self.api_key['key']}"},
                                 json={"model": model, "messages": [{"role": "user", "content": "Say hello"}]})
        assert response.status_code == 200, response.text

    def message(self, model: str, expect: int = 200) -> None:
        response = self.session.post(f"{self.url}/conversations/{self.conversation}/messages",
                                     json={"content": "Say hello", "model": model}, timeout=30)
        assert response.status_code == expect, response.text

    def stream(self, model: str, *, read_events: int | None = None) -> None:
        """A streamed chat, read to the end, or abandoned after `read_events` events."""
        with self.session.post(f"{self.url}/conversations/{self.conversation}/stream",
                               json={"content": "Say hello", "model": model}, stream=True, timeout=30) as response:
            assert response.status_code == 200, response.text
            events = 0
            for line in response.iter_lines():
                if line.startswith(b"data: "):
                    events += 1
                    if read_events is not None and events >= read_events:
                        break  # closing the response is the client leaving

    def close(self):
        self.session.close()


def send_traffic(client: Client, fake: FakeModelServer) -> None:
    fast = Script(tokens=TOKENS, first_token_delay=0.02, token_delay=0.01)
    fake.reset(fast)
    for model in (OLLAMA_MODEL, OPENAI_MODEL):
        client.message(model)
        client.stream(model)
        client.stream(model)
        client.v1(model)
    fake.queue(Script(status=500))                      # provider_error
    client.message(OLLAMA_MODEL, expect=502)
    fake.queue(Script(headers_delay=2.5))               # timeout (PROVIDER_READ_TIMEOUT=1)
    client.message(OPENAI_MODEL, expect=504)
    fake.queue(Script(tokens=["x"] * 40, token_delay=0.1))  # the client leaves mid-stream
    client.stream(OLLAMA_MODEL, read_events=2)
    assert requests.get(f"{client.url}/health", timeout=10).status_code == 200
    assert requests.get(f"{client.url}/no-such-route", timeout=10).status_code == 404


def wait_for_scrape_after(prom: Prometheus, moment: float) -> None:
    """Until Prometheus has scraped the gateway after `moment` (a time.time())."""
    def scraped():
        # timestamp() of a plain selector: the time of the last scrape (of an expression: now).
        result = prom.query("timestamp(up)")
        return len(result) == len(JOBS) and all(float(sample["value"][1]) > moment for sample in result)
    wait_until(scraped, timeout=30, interval=0.5, what="a scrape after the traffic")


def dashboard_queries():
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            yield panel["title"], target["refId"], target["expr"]


def grafana_to_promql(expr: str, job: str) -> str:
    """What Grafana sends for one job and 'All' instances and models over a short range."""
    expr = expr.replace("$__rate_interval", "1m").replace("$instance", ".*").replace("$model", ".*")
    return expr.replace("$job", job)  # our job names hold no regex metacharacters


@pytest.fixture(scope="module")
def stack(tmp_path_factory, prometheus_bin):
    tmp_path = tmp_path_factory.mktemp("monitoring-e2e")
    # The Ollama model's second upstream answers the health probe but fails every chat with a 500: tried,
    # failed over, ejected, given its trial again by the probe (the Upstreams row). One where nothing listens
    # would be ejected by each worker's first probe, before any chat could fail over from it.
    with FakeModelServer() as fake, FakeModelServer(script=Script(status=500)) as failing:
        # The OpenAI-compatible model has a price, so the cost panel has data (the other has none).
        models = tmp_path / "models.json"
        models.write_text(json.dumps({"default_model": OLLAMA_MODEL, "models": {
            OLLAMA_MODEL: {"provider": "ollama", "upstreams": [{"name": "live", "base_url": fake.ollama_url},
                                                               {"name": "failing", "base_url": failing.ollama_url}]},
            OPENAI_MODEL: {"provider": "openai", "base_url": fake.openai_url, "api_key_env": "E2E_OPENAI_KEY",
                           "input_price": "0.15", "output_price": "0.60"}}}))
        gateway = Gunicorn(tmp_path, workers=WORKERS, env={
            "METRICS_TOKEN": TOKEN,
            "MODELS_FILE": str(models),
            "E2E_OPENAI_KEY": "sk-test-key",
            "PROVIDER_READ_TIMEOUT": "1",
            "USAGE_METRICS_REFRESH_SECONDS": "1",
        })
        with gateway:
            gateway.wait_for_workers(WORKERS)
            target = f"127.0.0.1:{gateway.metrics_port}"
            prometheus = Prometheus(tmp_path, target=target, prometheus_bin=prometheus_bin, metrics_token=TOKEN)
            # Beside the project's targets/gateway.yml: the same gateway, under someone else's job name.
            (prometheus.runtime_dir / "targets").mkdir(parents=True)
            (prometheus.runtime_dir / "targets" / "other-job.yml").write_text(
                yaml.safe_dump([{"targets": [target], "labels": {"job": OTHER_JOB}}]))
            with prometheus:
                prometheus.wait_for_target("up", count=len(JOBS))
                client = Client(gateway.url)
                try:
                    # Two rounds with a scrape between them, so every rate() sees counters move.
                    send_traffic(client, fake)
                    wait_for_scrape_after(prometheus, time.time())
                    send_traffic(client, fake)
                    wait_for_scrape_after(prometheus, time.time())
                finally:
                    client.close()
                yield gateway, prometheus


def test_the_metrics_listener_wants_the_token(stack):
    gateway, _ = stack
    assert requests.get(gateway.metrics_url, timeout=10).status_code == 401
    ok = requests.get(gateway.metrics_url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    assert ok.status_code == 200 and "chat_completions_total" in ok.text


def test_target_is_up_with_the_project_settings(stack):
    gateway, prom = stack
    targets = {target["labels"]["job"]: target for target in prom.targets()}
    assert set(targets) == set(JOBS)
    for target in targets.values():
        assert target["health"] == "up", target
        assert target["labels"]["instance"] == f"127.0.0.1:{gateway.metrics_port}"
        assert target["scrapeInterval"] == "5s"


@pytest.mark.parametrize("job", JOBS)
@pytest.mark.parametrize("title, ref, expr", [pytest.param(*q, id=f"{q[0]} {q[1]}") for q in dashboard_queries()])
def test_every_dashboard_query_returns_data(stack, title, ref, expr, job):
    _, prom = stack
    result = prom.query(grafana_to_promql(expr, job))
    assert result, f"{title} ({ref}) returned nothing for job {job}: {expr}"
    print(f"{title} ({ref}) job {job}: {len(result)} series <- {expr}")  # the series count, for `pytest -s`
    values = [float(sample["value"][1]) for sample in result]
    assert any(not math.isnan(v) for v in values), f"{title} ({ref}) returned only NaN: {result}"
    # The data came through $job: a job that does not exist shows nothing.
    assert prom.query(grafana_to_promql(expr, "no-such-job")) == [], f"{title} ({ref}) ignores $job"


def test_template_variables_list_every_gateway_job_the_instance_and_both_models(stack):
    gateway, prom = stack
    variables = {v["name"]: v for v in json.loads(DASHBOARD.read_text())["templating"]["list"]}
    job_query = re.fullmatch(r"label_values\((.+), job\)", variables["job"]["query"]["query"]).group(1)
    assert sorted(prom.api("label/job/values", **{"match[]": job_query})) == sorted(JOBS)
    for job in JOBS:
        instances = prom.api("label/instance/values", **{"match[]": f'up{{job=~"{job}"}}'})
        assert instances == [f"127.0.0.1:{gateway.metrics_port}"]
        models = prom.api("label/model/values", **{"match[]": f'chat_completions_total{{job=~"{job}"}}'})
        assert set(models) == {OLLAMA_MODEL, OPENAI_MODEL}


def test_panels_show_what_the_traffic_did(stack):
    gateway, prom = stack
    outcomes = {s["metric"]["outcome"] for s in prom.query('chat_completions_total{job="ai-chat-gateway"}')}
    assert {"success", "provider_error", "timeout", "client_disconnect"} <= outcomes
    streaming = {s["metric"]["streaming"] for s in prom.query('chat_completion_duration_seconds_count{job="ai-chat-gateway"}')}
    assert streaming == {"true", "false"}
    token_types = {s["metric"]["type"] for s in prom.query('chat_completion_tokens_total{job="ai-chat-gateway"}')}
    assert token_types == {"prompt", "completion"}
    memory = prom.query('process_resident_memory_bytes{job="ai-chat-gateway"}')
    roles = sorted((s["metric"]["role"], int(s["metric"]["pid"])) for s in memory)
    assert roles == sorted([("master", gateway.pid)] + [("worker", pid) for pid in gateway.worker_pids()])
    routes = {s["metric"]["route"] for s in prom.query('http_requests_total{job="ai-chat-gateway"}')}
    assert {"/conversations/<id>/messages", "/conversations/<id>/stream", "/health"} <= routes
    costs = {s["metric"]["model"] for s in prom.query('chat_completion_cost_usd_total{job="ai-chat-gateway"} > 0')}
    assert costs == {OPENAI_MODEL}, "only the priced model costs anything"
    for name in ("gateway_usage_month_tokens", "gateway_usage_month_cost_usd"):
        orgs = {s["metric"]["org"] for s in prom.query(f'{name}{{job="ai-chat-gateway"}} > 0')}
        assert len(orgs) == 1 and "other" not in orgs, f"{name}: the one org that chatted, by id: {orgs}"
    for name in ("gateway_usage_api_key_month_tokens", "gateway_usage_api_key_month_cost_usd"):
        keys = {s["metric"]["api_key"] for s in prom.query(f'{name}{{job="ai-chat-gateway"}} > 0')}
        assert len(keys) == 1 and "other" not in keys, f"{name}: the one key that chatted, by id: {keys}"
    upstreams = {(s["metric"]["upstream"], s["value"][1]) for s in prom.query(
        'max by (upstream) (chat_upstream_up{job="ai-chat-gateway", model="llama3.1"})')}
    # Whether every worker has ejected "failing" yet depends on how the calls fell: tests/upstreams proves that.
    assert ("live", "1") in upstreams and {name for name, _ in upstreams} == {"live", "failing"}
    failovers = prom.query('sum(chat_failovers_total{job="ai-chat-gateway", model="llama3.1", reason="http_5xx"})')
    assert float(failovers[0]["value"][1]) >= 1
    ratios = {(s["metric"]["org"], s["metric"]["limit"]) for s in prom.query('gateway_usage_budget_used_ratio > 0')}
    assert {limit for _, limit in ratios} == {"tokens", "cost"} and "other" not in {org for org, _ in ratios}


def test_every_rule_is_loaded_and_healthy(stack):
    _, prom = stack
    rules = prom.wait_for_rules_evaluated()
    expected = {rule.get("alert") or rule.get("record")
                for path in (PROMETHEUS_DIR / "rules").glob("*.rules.yml")
                for group in yaml.safe_load(path.read_text())["groups"] for rule in group["rules"]}
    assert {rule["name"] for rule in rules} == expected
    assert [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"] == []
    # The recorded ratios have data once traffic flowed (each group on its own schedule: wait).
    def per_model():
        return {(s["metric"]["job"], s["metric"]["model"])
                for s in prom.query("job_model:chat_completions_errors:ratio_rate5m")}
    wait_until(lambda: per_model() == {(job, model) for job in JOBS for model in (OLLAMA_MODEL, OPENAI_MODEL)},
               timeout=40, interval=1, what="per-model chat ratios for every job")

    def jobs_of(name):
        return sorted(s["metric"]["job"] for s in prom.query(name))
    for name in ("job:chat_availability_errors:ratio_rate5m", "job:chat_availability_errors:ratio_rate1h",
                 "job:http_requests_5xx:ratio_rate5m", "job_model:chat_completion_duration_seconds:p95_5m",
                 "job_model:chat_time_to_first_token_seconds:p95_5m"):
        wait_until(lambda name=name: set(jobs_of(name)) == set(JOBS), timeout=40, interval=1,
                   what=f"{name} recorded for every job")
    # Provider errors and timeouts count, successes too: strictly between 0 and 1. Waited for, not read once: an
    # evaluation between two scrapes of the first round alone saw no increase and recorded 0/0 = NaN, which the
    # next evaluation after the second round replaces.
    def availability_ratios():
        return sorted(float(s["value"][1]) for s in prom.query("job:chat_availability_errors:ratio_rate5m"))
    wait_until(lambda: len(ratios := availability_ratios()) == len(JOBS) and all(0 < r < 1 for r in ratios),
               timeout=40, interval=1, what="availability error ratios strictly between 0 and 1 for every job")
