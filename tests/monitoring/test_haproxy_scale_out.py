"""Two gateway instances sharing one PostgreSQL behind HAProxy (monitoring/haproxy/haproxy.cfg),
both scraped by Prometheus through the file_sd targets."""
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests

from bench.fake_model import Script
from tests.monitoring.conftest import IN_CI
from tests.monitoring.prometheus_server import Prometheus
from tests.support.gateway import chat_env
from tests.support.metrics import parse
from tests.support.raw_http import connect, request_head
from tests.support.servers import ROOT, Gunicorn, ManagedProcess, free_port, wait_until

pytestmark = pytest.mark.slow

HAPROXY_CONFIG = ROOT / "monitoring" / "haproxy" / "haproxy.cfg"


@pytest.fixture(scope="session")
def haproxy_bin() -> str:
    path = shutil.which("haproxy") or ("/usr/sbin/haproxy" if os.path.exists("/usr/sbin/haproxy") else None)
    if path:
        return path
    if IN_CI:
        pytest.fail("haproxy is not installed; CI must run the scale-out test (apt-get install haproxy)")
    pytest.skip("haproxy is not installed (Debian/Ubuntu: apt-get install haproxy); CI runs this test")


class HAProxy(ManagedProcess):
    name = "haproxy"

    def __init__(self, tmp_path, binary: str, gateways: list[Gunicorn]):
        super().__init__()
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = Path(tmp_path) / "haproxy.log"
        self.binary = binary
        self.env = {**os.environ, "HAPROXY_BIND": f"127.0.0.1:{self.port}",
                    "GATEWAY_1": f"127.0.0.1:{gateways[0].port}", "GATEWAY_2": f"127.0.0.1:{gateways[1].port}"}

    def command(self):
        return [self.binary, "-db", "-f", str(HAPROXY_CONFIG)], self.env, ROOT

    def ready(self) -> bool:
        return requests.get(f"{self.url}/livez", timeout=1).status_code == 200


def livez_served(gateway: Gunicorn) -> float:
    samples = parse(requests.get(gateway.metrics_url, timeout=5).text)
    return samples.value("http_requests_total", method="GET", route="/livez", status_code="200")


def test_two_instances_serve_through_haproxy_and_prometheus_scrapes_both(tmp_path, haproxy_bin, prometheus_bin,
                                                                           _postgres, fake_llm):
    _postgres.truncate()
    first = Gunicorn(tmp_path / "one", database_url=_postgres.url, workers=2, env=chat_env(fake_llm))
    second = Gunicorn(tmp_path / "two", database_url=_postgres.url, workers=2, env=chat_env(fake_llm))
    with first, second, HAProxy(tmp_path, haproxy_bin, [first, second]) as proxy, \
            Prometheus(tmp_path, target=f"127.0.0.1:{first.metrics_port},127.0.0.1:{second.metrics_port}",
                       prometheus_bin=prometheus_bin) as prometheus:
        # Both instances share the database and the JWT secret: a user registered
        # through one instance logs in and is recognised through either.
        credentials = {"email": "scale@example.com", "password": "correct horse battery"}
        assert requests.post(f"{proxy.url}/auth/register", json=credentials, timeout=10).status_code == 201
        for gateway in (first, second):
            login = requests.post(f"{gateway.url}/auth/login", json=credentials, timeout=10)
            assert login.status_code == 200, login.text
            me = requests.get(f"{proxy.url}/auth/me", timeout=10,
                              headers={"Authorization": f"Bearer {login.json()['accessToken']}"})
            assert me.status_code == 200 and me.json()["email"] == credentials["email"]

        before = [livez_served(first), livez_served(second)]
        for _ in range(40):
            assert requests.get(f"{proxy.url}/livez", timeout=5).status_code == 200
        served = [livez_served(first) - before[0], livez_served(second) - before[1]]
        assert all(count > 0 for count in served), served  # both instances took part

        def both_up():
            targets = prometheus.targets()
            return len(targets) == 2 and all(t["health"] == "up" for t in targets) and targets
        targets = wait_until(both_up, timeout=30, interval=0.5, what="both gateway targets up")
        assert {t["labels"]["instance"] for t in targets} == {f"127.0.0.1:{first.metrics_port}",
                                                             f"127.0.0.1:{second.metrics_port}"}

        # The dashboard's panels sum over instances: the total is what both served.
        total_now = livez_served(first) + livez_served(second)

        def summed():
            result = prometheus.query('sum(http_requests_total{job="ai-chat-gateway", route="/livez", '
                                      'status_code="200"})')
            return result and float(result[0]["value"][1]) >= total_now and result
        wait_until(summed, timeout=30, interval=0.5, what="a scrape of both instances after the traffic")
        per_instance = prometheus.query('count by (instance) (up{job="ai-chat-gateway"} == 1)')
        assert len(per_instance) == 2

        # A client leaving a whole reply through HAProxy frees the model server too (option abortonclose).
        fake_llm.script = Script(hang=True)
        token = requests.post(f"{proxy.url}/auth/login", json=credentials, timeout=10).json()["accessToken"]
        body = json.dumps({"model": "llama3.1", "messages": [{"role": "user", "content": "hello?"}]}).encode()
        with connect(proxy.url, timeout=10) as client:
            client.sendall(request_head("POST", "/v1/chat/completions", {
                "Authorization": f"Bearer {token}", "Content-Type": "application/json",
                "Content-Length": str(len(body))}) + body)
            assert fake_llm.wait_until(lambda: fake_llm.requests, timeout=10)
        left = time.monotonic()
        assert fake_llm.wait_until(lambda: fake_llm.last_request.client_closed_at, timeout=5)
        assert fake_llm.last_request.client_closed_at - left < 1
