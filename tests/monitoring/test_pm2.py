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


SECRET = "test-jwt-secret-that-is-long-enough-for-hs256"
METRICS_TOKEN = "metrics-token-only-in-the-env-file"


def env_file(tmp_path, mode=0o600) -> Path:
    """The secrets, where PM2 never holds them: read by monitoring/with-env-file.sh at each start."""
    path = tmp_path / "gateway.env"
    path.write_text(f"# secrets\nJWT_SECRET_KEY={SECRET}\nMETRICS_TOKEN={METRICS_TOKEN}\n")
    path.chmod(mode)
    return path


def pm2_env(tmp_path, pm2_home, api_port, metrics_port, prometheus_bin="prometheus", prometheus_port=9090) -> dict:
    return {
        **{k: v for k, v in os.environ.items()
           if not k.startswith(("PM2_", "METRICS_", "PROMETHEUS_")) and k not in ("JWT_SECRET_KEY", "DATABASE_URL")},
        "PM2_HOME": pm2_home,
        "PM2_APP_PREFIX": f"test-{api_port}-",
        "API_HOST": "127.0.0.1",
        "API_PORT": str(api_port),
        "METRICS_HOST": "127.0.0.1",
        "METRICS_PORT": str(metrics_port),
        "DATABASE_URL": f"sqlite:///{tmp_path / 'pm2.db'}",
        "APP_ENV": "test",
        "GATEWAY_ENV_FILE": str(env_file(tmp_path)),
        "WEB_CONCURRENCY": "2",
        "GUNICORN_BIN": gunicorn_bin(),
        "PROMETHEUS_BIN": prometheus_bin,
        "PROMETHEUS_LISTEN_ADDRESS": f"127.0.0.1:{prometheus_port}",
        "PROMETHEUS_DATA_DIR": str(tmp_path / "prometheus-data"),
        "PROMETHEUS_RUNTIME_DIR": str(tmp_path / "prometheus-runtime"),
    }


def test_pm2_runs_the_gateway_and_prometheus(pm2_bin, prometheus_bin, tmp_path):
    # A short PM2_HOME: PM2's unix sockets live there, and socket paths are limited to ~100 bytes.
    pm2_home = tempfile.mkdtemp(prefix="pm2-")
    api_port, metrics_port, prometheus_port = free_port(), free_port(), free_port()
    env = pm2_env(tmp_path, pm2_home, api_port, metrics_port, prometheus_bin, prometheus_port)

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


def test_pm2_save_keeps_the_secrets_out_of_its_dump(pm2_bin, tmp_path):
    pm2_home = tempfile.mkdtemp(prefix="pm2-")
    api_port, metrics_port = free_port(), free_port()
    env = pm2_env(tmp_path, pm2_home, api_port, metrics_port)

    def pm2(*args, extra=None, timeout=60):
        return subprocess.run([pm2_bin, *args], env={**env, **(extra or {})}, cwd=tmp_path, capture_output=True,
                              text=True, timeout=timeout)

    try:
        refused = pm2("start", str(ECOSYSTEM), "--only", f"test-{api_port}-gateway", extra={"JWT_SECRET_KEY": SECRET})
        assert "JWT_SECRET_KEY must not be in the environment of pm2 start" in refused.stdout + refused.stderr
        assert f"test-{api_port}-gateway" not in pm2("jlist").stdout

        started = pm2("start", str(ECOSYSTEM), "--only", f"test-{api_port}-gateway")
        assert started.returncode == 0, started.stdout + started.stderr
        metrics = f"http://127.0.0.1:{metrics_port}/metrics"

        def status(headers=None):
            try:
                return requests.get(metrics, headers=headers, timeout=2).status_code
            except requests.RequestException:
                return None
        # The token came from the file: the metrics listener wants it.
        wait_until(lambda: status() == 401, timeout=60, interval=0.5, what="the gateway under PM2")
        assert status({"Authorization": f"Bearer {METRICS_TOKEN}"}) == 200

        saved = pm2("save")
        assert saved.returncode == 0, saved.stdout + saved.stderr
        dump = Path(pm2_home, "dump.pm2").read_text()
        assert str(env_file(tmp_path)) in dump
        assert SECRET not in dump and METRICS_TOKEN not in dump
    finally:
        pm2("kill", timeout=90)
        shutil.rmtree(pm2_home, ignore_errors=True)


def test_an_env_file_others_can_read_is_refused(tmp_path):
    done = subprocess.run([str(ROOT / "monitoring" / "with-env-file.sh"), "true"], capture_output=True, text=True,
                          env={"PATH": os.environ["PATH"], "GATEWAY_ENV_FILE": str(env_file(tmp_path, 0o644))})
    assert done.returncode != 0
    assert "has mode 644: others may read its secrets; chmod 600 it" in done.stderr
    assert SECRET not in done.stderr
