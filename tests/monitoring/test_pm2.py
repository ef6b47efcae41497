"""The container-free path: monitoring/ecosystem.config.js under a real PM2 (own PM2_HOME),
ports overridden by the environment; the gateway answers /health and Prometheus sees it up."""
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest
import requests

from tests.monitoring.conftest import IN_CI
from tests.support.servers import free_port, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

ROOT = Path(__file__).resolve().parents[2]
ECOSYSTEM = ROOT / "monitoring" / "ecosystem.config.js"


@pytest.fixture(scope="module")
def pm2_bin():
    path = shutil.which("pm2")
    if not path:
        if IN_CI:
            pytest.fail("pm2 is not installed; CI must run this test (npm install -g pm2)")
        pytest.skip("pm2 is not installed (npm install -g pm2); CI runs this test")
    return path


def gunicorn_bin() -> str:
    """gunicorn of the Python running the tests (the README's virtualenv in CI)."""
    beside = Path(sys.executable).parent / "gunicorn"
    return str(beside) if beside.exists() else shutil.which("gunicorn") or pytest.fail("gunicorn is not installed")


def test_pm2_runs_the_gateway_and_prometheus(pm2_bin, prometheus_bin, tmp_path):
    # A short PM2_HOME: PM2's unix sockets live there, and socket paths are limited to ~100 bytes.
    pm2_home = tempfile.mkdtemp(prefix="pm2-")
    api_port, metrics_port, prometheus_port = free_port(), free_port(), free_port()
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith(("PM2_", "METRICS_", "PROMETHEUS_"))},
        "PM2_HOME": pm2_home,
        "PM2_APP_PREFIX": f"test-{api_port}-",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(api_port),
        "METRICS_HOST": "127.0.0.1",
        "METRICS_PORT": str(metrics_port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'pm2.db'}",
        "APP_ENV": "test",
        "JWT_SECRET_KEY": "test-jwt-secret-that-is-long-enough-for-hs256",
        "WEB_CONCURRENCY": "2",
        "GUNICORN_BIN": gunicorn_bin(),
        "PROMETHEUS_BIN": prometheus_bin,
        "PROMETHEUS_LISTEN_ADDRESS": f"127.0.0.1:{prometheus_port}",
        "PROMETHEUS_DATA_DIR": str(tmp_path / "prometheus-data"),
        "PROMETHEUS_RUNTIME_DIR": str(tmp_path / "prometheus-runtime"),
    }

    def pm2(*args, timeout=60):
        return subprocess.run([pm2_bin, *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=timeout)

    def logs() -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text(errors='replace')[-3000:]}"
                         for p in sorted(Path(pm2_home, "logs").glob("*.log")))

    try:
        started = pm2("start", str(ECOSYSTEM))
        assert started.returncode == 0, started.stdout + started.stderr

        def healthy():
            try:
                return requests.get(f"http://127.0.0.1:{api_port}/health", timeout=2).status_code == 200
            except requests.RequestException:
                return False
        try:
            wait_until(healthy, timeout=60, interval=0.5, what="the gateway's /health under PM2")
        except TimeoutError as exc:
            pytest.fail(f"{exc}\n{logs()}")

        def target_up():
            try:
                body = requests.get(f"http://127.0.0.1:{prometheus_port}/api/v1/targets", timeout=2).json()
            except (requests.RequestException, ValueError):
                return None
            targets = body["data"]["activeTargets"]
            return targets if targets and targets[0]["health"] == "up" else None
        try:
            [target] = wait_until(target_up, timeout=60, interval=0.5, what="the Prometheus target up under PM2")
        except TimeoutError as exc:
            pytest.fail(f"{exc}\n{logs()}")
        assert target["scrapeUrl"] == f"http://127.0.0.1:{metrics_port}/metrics"

        listing = pm2("jlist")
        assert f"test-{api_port}-gateway" in listing.stdout and f"test-{api_port}-prometheus" in listing.stdout
    finally:
        stopped = pm2("kill", timeout=90)
        shutil.rmtree(pm2_home, ignore_errors=True)
    assert stopped.returncode == 0, stopped.stdout + stopped.stderr

    def closed(port):
        try:
            requests.get(f"http://127.0.0.1:{port}/", timeout=1)
            return False
        except requests.ConnectionError:
            return True
    wait_until(lambda: closed(api_port) and closed(prometheus_port), timeout=30, what="both stopped")
