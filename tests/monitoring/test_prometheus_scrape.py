"""A real Prometheus with the project's configuration, scraping a stand-in for the gateway's /metrics.

Proves the scrape settings and the token handling without the gateway: with no
METRICS_TOKEN the (empty) token file still scrapes an open endpoint; with one,
Prometheus sends it and a gateway that checks it is scraped; a wrong token
shows as a down target. Every rule loads and evaluates healthy."""
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
import yaml

from tests.monitoring.prometheus_server import PROMETHEUS_DIR, Prometheus

pytestmark = [pytest.mark.slow, pytest.mark.timeout(150)]

EXPOSITION = b"""# HELP gateway_build_info Always 1; the labels carry the running version.
# TYPE gateway_build_info gauge
gateway_build_info{python_version="3.11.7",version="stub"} 1.0
# TYPE http_requests_total counter
http_requests_total{method="GET",route="/health",status_code="200"} 3.0
"""


class StubGateway:
    """Serves /metrics like the gateway: open when `token` is None, else Bearer-protected."""

    def __init__(self, token=None):
        self.token = token
        self.authorization_headers = []
        stub = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self):
                stub.authorization_headers.append(self.headers.get("Authorization"))
                if self.path != "/metrics":
                    self.send_error(404)
                    return
                if stub.token is not None and self.headers.get("Authorization") != f"Bearer {stub.token}":
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", "Bearer")
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                self.send_response(200)
                self.send_header("Content-Type", "text/plain; version=0.0.4; charset=utf-8")
                self.send_header("Content-Length", str(len(EXPOSITION)))
                self.end_headers()
                self.wfile.write(EXPOSITION)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.target = f"127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.server.shutdown()
        self.server.server_close()
        self.thread.join(timeout=10)


def test_open_gateway_is_scraped_with_an_empty_token_file_and_every_rule_is_healthy(tmp_path, prometheus_bin):
    with StubGateway() as gateway, Prometheus(tmp_path, target=gateway.target, prometheus_bin=prometheus_bin) as prom:
        assert (prom.runtime_dir / "secrets" / "metrics_token").read_text() == ""
        target = prom.wait_for_target("up")
        assert target["labels"]["job"] == "ai-chat-gateway"
        assert target["labels"]["instance"] == gateway.target
        assert target["scrapeUrl"] == f"http://{gateway.target}/metrics"
        assert target["lastError"] == ""
        # The interval is what the configuration says, not Prometheus' 1m default.
        assert target["scrapeInterval"] == "5s"
        # An empty token file still sends the header, with no credentials: an open
        # gateway (no METRICS_TOKEN) must ignore it.
        assert {h.strip() if h else h for h in gateway.authorization_headers} <= {"Bearer"}

        assert prom.query('gateway_build_info{job="ai-chat-gateway"}')[0]["metric"]["version"] == "stub"

        rules = prom.wait_for_rules_evaluated()
        expected = sum(len(group["rules"]) for path in (PROMETHEUS_DIR / "rules").glob("*.rules.yml")
                       for group in yaml.safe_load(path.read_text())["groups"])
        assert len(rules) == expected
        unhealthy = [(r["name"], r.get("lastError")) for r in rules if r["health"] != "ok"]
        assert unhealthy == []
        objective = prom.query("job:chat_availability:slo_objective")
        assert [float(s["value"][1]) for s in objective] == [0.995]


def test_protected_gateway_gets_the_token_and_a_wrong_token_shows_as_down(tmp_path, prometheus_bin):
    token = "a-metrics-token-of-some-length"
    with StubGateway(token=token) as gateway, \
            Prometheus(tmp_path, target=gateway.target, prometheus_bin=prometheus_bin, metrics_token=token) as prom:
        prom.wait_for_target("up")
        assert f"Bearer {token}" in gateway.authorization_headers

        gateway.token = "the-gateway-now-wants-another-token"
        down = prom.wait_for_target("down")
        assert "401" in down["lastError"]
        assert [float(s["value"][1]) for s in prom.query('up{job="ai-chat-gateway"}')] == [0.0]
