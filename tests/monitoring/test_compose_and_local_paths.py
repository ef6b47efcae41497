"""docker-compose.yml (checked statically: no Docker engine here), the PM2 ecosystem file and run-local.sh."""
import json
import os
import re
import subprocess
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
MONITORING = ROOT / "monitoring"
COMPOSE = MONITORING / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


def volumes(service) -> dict[str, str]:
    """container path -> source, for the service's volumes."""
    out = {}
    for volume in service.get("volumes", []):
        source, target = volume.split(":")[:2]
        out[target] = source
    return out


def test_compose_runs_prometheus_and_grafana(compose):
    assert {"prometheus", "grafana"} <= compose["services"].keys()
    for service in compose["services"].values():
        assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+\.\d+", service["image"]), "pin image versions"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{port}: publish on loopback only"


def test_compose_prometheus_reaches_the_gateway_on_the_host_everywhere(compose):
    prometheus = compose["services"]["prometheus"]
    assert "host.docker.internal:host-gateway" in prometheus["extra_hosts"]
    env = prometheus["environment"]
    assert env["GATEWAY_METRICS_HOST"] == "host.docker.internal"
    assert env["METRICS_PORT"] == "${METRICS_PORT:-4001}"
    assert env["METRICS_TOKEN"] == "${METRICS_TOKEN:-}"


def test_compose_prometheus_uses_the_shared_start_script_and_config(compose):
    prometheus = compose["services"]["prometheus"]
    mounts = volumes(prometheus)
    config_mount = next(target for target, source in mounts.items() if source == "./prometheus")
    assert prometheus["entrypoint"] == ["/bin/sh", f"{config_mount}/start-prometheus.sh"]
    runtime = prometheus["environment"]["PROMETHEUS_RUNTIME_DIR"]
    assert runtime in prometheus["tmpfs"], "the runtime directory (token included) lives in memory"
    assert mounts[prometheus["environment"]["PROMETHEUS_DATA_DIR"]] == "prometheus-data"
    assert prometheus["environment"]["PROMETHEUS_LISTEN_ADDRESS"] == "0.0.0.0:9090"


def test_compose_paths_exist(compose):
    for service in compose["services"].values():
        for source in volumes(service).values():
            if source.startswith("./"):
                assert (MONITORING / source).exists(), source
            else:
                assert source in compose["volumes"], source


def test_compose_grafana_admin_password_comes_from_the_environment_without_default(compose):
    env = compose["services"]["grafana"]["environment"]
    password = env["GF_SECURITY_ADMIN_PASSWORD"]
    assert re.fullmatch(r"\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}", password), "must fail when unset, with no default"
    assert env["GF_AUTH_ANONYMOUS_ENABLED"] == "false"
    assert env["GF_USERS_ALLOW_SIGN_UP"] == "false"
    home = env["GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH"]
    dashboards = volumes(compose["services"]["grafana"])
    mount = next(target for target in dashboards if home.startswith(target + "/"))
    assert (MONITORING / dashboards[mount] / home[len(mount) + 1:]).is_file()


def test_ecosystem_runs_gateway_and_prometheus_with_the_callers_environment(node_bin, tmp_path):
    script = "console.log(JSON.stringify(require(process.argv[1])))"
    secrets = str(tmp_path / "gateway.env")
    env = {**{k: v for k, v in os.environ.items() if k not in ("JWT_SECRET_KEY", "METRICS_TOKEN", "DATABASE_URL")},
           "METRICS_PORT": "5101", "GATEWAY_ENV_FILE": secrets, "PM2_APP_PREFIX": "test-"}
    result = subprocess.run([node_bin, "-e", script, str(MONITORING / "ecosystem.config.js")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    gateway, prometheus = json.loads(result.stdout)["apps"]
    assert gateway["name"] == "test-gateway" and prometheus["name"] == "test-prometheus"
    assert Path(gateway["cwd"]) == ROOT
    # Both start through the script that reads the secrets file, so PM2 never holds the secrets.
    assert Path(gateway["script"]) == Path(prometheus["script"]) == MONITORING / "with-env-file.sh"
    assert Path(gateway["args"][0]).name == "gunicorn"
    assert gateway["args"][1:] == ["-c", "gunicorn.conf.py", "wsgi:app"]
    assert [Path(a) for a in prometheus["args"]] == [MONITORING / "prometheus" / "start-prometheus.sh"]
    for app in (gateway, prometheus):
        assert app["interpreter"] == "none" or app["interpreter"] == "sh"
        assert app["kill_signal"] == "SIGTERM"
        assert app["env"]["METRICS_PORT"] == "5101" and app["env"]["GATEWAY_ENV_FILE"] == secrets


@pytest.mark.parametrize("secret", ["JWT_SECRET_KEY=jwt-secret-value", "METRICS_TOKEN=t0ken", "OPENAI_API_KEY=sk-x",
                                    "DATABASE_URL=postgresql://gateway:pw@db/gateway"])
def test_ecosystem_refuses_a_secret_in_the_start_environment(node_bin, tmp_path, secret):
    name, value = secret.split("=", 1)
    env = {**{k: v for k, v in os.environ.items() if k not in ("JWT_SECRET_KEY", "METRICS_TOKEN", "DATABASE_URL")},
           name: value}
    result = subprocess.run([node_bin, "-e", "require(process.argv[1])", str(MONITORING / "ecosystem.config.js")],
                            cwd=tmp_path, env=env, capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert f"{name} must not be in the environment of pm2 start" in result.stderr and value not in result.stderr


@pytest.mark.parametrize("script, shell", [
    ("run-local.sh", "bash"),
    ("with-env-file.sh", "bash"),
    ("prometheus/start-prometheus.sh", "sh"),
    ("prometheus/render-runtime.sh", "sh"),
])
def test_shell_scripts_parse(script, shell):
    result = subprocess.run([shell, "-n", str(MONITORING / script)], capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr


def test_run_local_explains_a_missing_prometheus(tmp_path):
    env = {**os.environ, "PROMETHEUS_BIN": str(tmp_path / "no-such-prometheus")}
    result = subprocess.run(["bash", str(MONITORING / "run-local.sh")], env=env,
                            capture_output=True, text=True, timeout=30)
    assert result.returncode == 1
    assert "install Prometheus or set PROMETHEUS_BIN" in result.stderr

