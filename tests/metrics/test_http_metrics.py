"""HTTP metrics under a real gunicorn with three workers: exact, bounded, and readable by Prometheus tools."""
import os
import shutil
import subprocess
import uuid
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

from tests.support.metrics import parse, scrape
from tests.support.servers import Gunicorn, wait_until

pytestmark = pytest.mark.slow
IN_CI = os.environ.get("CI", "").lower() == "true"

# (method, path, body kwargs, expected route label, expected status, how many)
TRAFFIC = [
    ("GET", "/livez", {}, "/livez", "200", 37),
    ("GET", "/health", {}, "/health", "200", 23),
    ("GET", "/no-such-page", {}, "<unmatched>", "404", 29),
    ("PUT", "/livez", {}, "<unmatched>", "405", 11),
    ("POST", "/auth/login", {"data": "x", "headers": {"Content-Type": "text/plain"}}, "/auth/login", "415", 13),
    ("POST", "/auth/register", {"json": {}}, "/auth/register", "400", 7),
    ("GET", "/auth/me", {}, "/auth/me", "401", 5),
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    with Gunicorn(tmp_path_factory.mktemp("metrics"), workers=3) as gunicorn:
        gunicorn.wait_for_workers(3)
        yield gunicorn


def send(server, method, path, kwargs):
    # A new connection per request, so the kernel spreads them over the workers.
    return requests.request(method, server.url + path, timeout=10, **kwargs).status_code


def test_counters_equal_requests_sent_whichever_worker_served_them(server):
    before = scrape(server.metrics_url)
    jobs = [(m, p, kw) for m, p, kw, _, _, n in TRAFFIC for _ in range(n)]
    with ThreadPoolExecutor(8) as pool:
        statuses = list(pool.map(lambda job: send(server, *job), jobs))
    assert len(statuses) == sum(t[-1] for t in TRAFFIC)

    def all_counted(url):
        # A request is counted when its response closes, just after its last byte reached
        # the client: under gevent the client can be faster than that close.
        after = scrape(url)
        return all(after.value("http_requests_total", method=m, route=r, status_code=s)
                   - before.value("http_requests_total", method=m, route=r, status_code=s) >= n
                   for m, _, _, r, s, n in TRAFFIC) and after

    for url in (server.metrics_url, server.url + "/metrics"):
        try:
            after = wait_until(lambda: all_counted(url), timeout=5, what="every request counted")
        except TimeoutError:
            after = scrape(url)  # the assertions below say which
        for method, _, _, route, status, count in TRAFFIC:
            labels = {"method": method, "route": route, "status_code": status}
            sent = after.value("http_requests_total", **labels) - before.value("http_requests_total", **labels)
            timed = after.value("http_request_duration_seconds_count", **labels) - before.value(
                "http_request_duration_seconds_count", **labels)
            assert (sent, timed) == (count, count), labels


def test_every_worker_served_some_of_the_traffic(server):
    pids = set(server.worker_pids())
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: send(server, "GET", "/livez", {}), range(120)))
    samples = scrape(server.metrics_url)
    reported = {s["pid"] for s in samples.series("process_resident_memory_bytes") if s["role"] == "worker"}
    assert reported == {str(pid) for pid in pids}
    assert {s["pid"] for s in samples.series("process_cpu_seconds_total") if s["role"] == "master"} == {str(server.pid)}
    assert all(samples.value("process_resident_memory_bytes", role="worker", pid=str(pid)) > 10e6 for pid in pids)


def test_random_urls_add_one_series_not_thousands(server):
    send(server, "GET", "/warm-up-the-unmatched-series", {})
    before = scrape(server.metrics_url)
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda _: send(server, "GET", f"/{uuid.uuid4().hex}/{uuid.uuid4().hex}", {}), range(1000)))
        list(pool.map(lambda _: send(server, uuid.uuid4().hex[:8].upper(), "/livez", {}), range(50)))
    after = scrape(server.metrics_url)
    new_series = set(after) - set(before)
    assert {name for name, _ in new_series} <= {
        "http_requests_total", "http_request_duration_seconds_count", "http_request_duration_seconds_sum",
        "http_request_duration_seconds_bucket"}
    # At most the method="OTHER" series of unknown methods: one per sample name (and bucket).
    assert len({pairs for _, pairs in new_series if ("le", "+Inf") not in pairs}) <= 10
    assert after.value("http_requests_total", method="GET", route="<unmatched>", status_code="404") - before.value(
        "http_requests_total", method="GET", route="<unmatched>", status_code="404") == 1000
    assert all(len(labels) <= 4 for labels in after.series("http_request_duration_seconds_bucket"))


def test_build_info_and_in_flight_gauges(server):
    samples = scrape(server.metrics_url)
    [info] = samples.series("gateway_build_info")
    from app.version import __version__

    assert info["version"] == __version__ and samples.value("gateway_build_info", **info) == 1
    # The master's listener is not a worker request: nothing is in flight between requests.
    assert samples.value("http_requests_in_flight") == 0
    assert scrape(server.url + "/metrics").value("http_requests_in_flight") == 1  # the scrape itself


def test_metrics_output_passes_promtool_and_the_python_parser(server, tmp_path):
    text = requests.get(server.metrics_url, timeout=5).text
    assert parse(text).value("gateway_build_info", **parse(text).series("gateway_build_info")[0]) == 1
    promtool = shutil.which("promtool")
    if promtool is None:
        if IN_CI:
            pytest.fail("promtool is missing: .ci/run installs Debian's prometheus package")
        pytest.skip("promtool is not installed (apt-get install prometheus)")
    for body in (text, requests.get(server.url + "/metrics", timeout=5).text):
        result = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0 and result.stdout.strip() == "" and result.stderr.strip() == "", result


def test_metrics_token_guards_both_listeners(tmp_path):
    token = "metrics-token-for-tests-0123456789"
    bodies = []
    with Gunicorn(tmp_path, workers=2, env={"METRICS_TOKEN": token}) as server:
        for url in (server.metrics_url, server.url + "/metrics"):
            assert requests.get(url, timeout=5).status_code == 401
            denied = requests.get(url, headers={"Authorization": "Bearer wrong"}, timeout=5)
            assert denied.status_code == 401 and denied.json()["error"]["code"] == "unauthorized"
            assert denied.headers["WWW-Authenticate"] == "Bearer"
            bodies.append(denied.json())
            assert scrape(url, token=token).series("gateway_build_info")
    # The master's listener answers outside Flask, with the same error contract as the API port.
    assert bodies[0] == bodies[1] and set(bodies[0]["error"]) == {"code", "message", "details"}
