"""In production, /metrics on the API port never answers without the metrics token; the master's port is the scrape path."""
import json

import pytest
import requests

from tests.support.servers import Gunicorn
from tests.support.workers import one_connection_per_worker

pytestmark = pytest.mark.slow
WORKERS = 2
TOKEN = "a-metrics-token-of-more-than-16-characters"
PRODUCTION = {"APP_ENV": "production", "PASSWORD_HASH_COST": "14", "METRICS_TOKEN": ""}


def on_every_worker(server, headers=None) -> set:
    connections = one_connection_per_worker(server, WORKERS)
    try:
        answers = set()
        for connection in connections.values():
            connection.request("GET", "/metrics", headers=headers or {})
            response = connection.getresponse()
            body = response.read()
            is_json = response.getheader("Content-Type", "").startswith("application/json")
            answers.add((response.status, json.loads(body)["error"]["code"] if is_json else "metrics"))
        return answers
    finally:
        for connection in connections.values():
            connection.close()


def test_without_a_token_the_api_port_answers_404_and_the_metrics_port_serves(tmp_path):
    with Gunicorn(tmp_path, workers=WORKERS, env=PRODUCTION) as server:
        server.wait_for_workers(WORKERS)
        assert on_every_worker(server) == {(404, "metrics_not_served")}
        response = requests.get(f"{server.url}/metrics", timeout=10)
        assert "METRICS_PORT" in response.json()["error"]["message"]
        scraped = requests.get(server.metrics_url, timeout=10)
        assert scraped.status_code == 200 and "http_requests_total" in scraped.text


def test_with_a_token_both_ports_want_it(tmp_path):
    with Gunicorn(tmp_path, workers=WORKERS, env={**PRODUCTION, "METRICS_TOKEN": TOKEN}) as server:
        server.wait_for_workers(WORKERS)
        assert on_every_worker(server) == {(401, "unauthorized")}
        assert on_every_worker(server, {"Authorization": "Bearer not-the-token"}) == {(401, "unauthorized")}
        assert on_every_worker(server, {"Authorization": f"Bearer {TOKEN}"}) == {(200, "metrics")}
        assert requests.get(server.metrics_url, timeout=10).status_code == 401
        assert requests.get(server.metrics_url, timeout=10, headers={"Authorization": f"Bearer {TOKEN}"}).ok

