"""monitoring/deploy/: the Dockerfile, the full-stack compose file and the systemd unit, checked statically.

No Docker engine (nor systemd) on these machines: the files are read, not run. What is checked is what
would break a `docker compose up` or a `systemctl start` without a word: paths, users, ports, healthchecks.
"""
import configparser
import re
from pathlib import Path

import pytest
import yaml

from app.config import Settings

ROOT = Path(__file__).resolve().parents[2]
DEPLOY = ROOT / "monitoring" / "deploy"
COMPOSE = DEPLOY / "docker-compose.yml"


@pytest.fixture(scope="module")
def compose():
    return yaml.safe_load(COMPOSE.read_text())


def dockerfile() -> list[tuple[str, str]]:
    text = re.sub(r"\\\n\s*", " ", (DEPLOY / "Dockerfile").read_text())
    lines = [line.strip() for line in text.splitlines() if line.strip() and not line.lstrip().startswith("#")]
    return [tuple(line.split(None, 1)) for line in lines]


def instructions(name: str) -> list[str]:
    return [arg for instruction, arg in dockerfile() if instruction == name]


def test_dockerfile_slim_non_root_with_a_livez_healthcheck():
    # Both stages start from BASE_IMAGE, whose default is the official slim image.
    assert instructions("FROM") == ["${BASE_IMAGE} AS build", "${BASE_IMAGE}"]
    [base] = [arg.split("=", 1)[1] for arg in instructions("ARG") if arg.startswith("BASE_IMAGE=")]
    assert re.fullmatch(r"python:3\.\d+-slim(-\w+)?", base)
    [user] = instructions("USER")
    assert user.split(":")[0] not in ("root", "0")
    [healthcheck] = instructions("HEALTHCHECK")
    assert "/livez" in healthcheck and "127.0.0.1:4000" in healthcheck
    [cmd] = instructions("CMD")
    assert cmd == '["gunicorn", "-c", "gunicorn.conf.py", "wsgi:app"]'
    assert set(instructions("EXPOSE")[0].split()) == {"4000", "4001"}


def test_dockerfile_copies_paths_that_exist_and_sets_production_settings():
    for arg in instructions("COPY"):
        if arg.startswith("--from="):  # from the build stage, not the context
            continue
        *sources, _target = arg.split()
        for source in sources:
            assert (ROOT / source).exists(), f"COPY {source}: not in the build context (the repository root)"
    env = " ".join(instructions("ENV"))
    settings = dict(re.findall(r"(\w+)=(\S+)", env))
    assert settings["APP_ENV"] == "production" and settings["LOG_FORMAT"] == "json"
    known = {spec.metadata["env"] for spec in Settings.__dataclass_fields__.values()}
    extra = {"PYTHONDONTWRITEBYTECODE", "PYTHONUNBUFFERED", "PIP_NO_CACHE_DIR", "PIP_DISABLE_PIP_VERSION_CHECK", "PATH",
             "WEB_CONCURRENCY", "PROMETHEUS_MULTIPROC_DIR"}
    assert set(settings) <= known | extra, "an ENV the gateway would ignore"
    ignore = (DEPLOY / "Dockerfile.dockerignore").read_text()
    assert "!app/**" in ignore and "!requirements.txt" in ignore and "!monitoring/deploy/wheelhouse/**" in ignore


def test_compose_runs_the_whole_stack(compose):
    services = compose["services"]
    assert {"gateway", "postgres", "prometheus", "grafana"} <= set(services)
    gateway = services["gateway"]
    build = gateway["build"]
    assert (COMPOSE.parent / build["context"]).resolve() == ROOT
    assert (ROOT / build["dockerfile"]).is_file()
    assert gateway["ports"] == ["127.0.0.1:${API_PORT:-4000}:4000"]
    assert "/livez" in " ".join(gateway["healthcheck"]["test"])
    assert gateway["depends_on"]["postgres"]["condition"] == "service_healthy"
    assert gateway["environment"]["DATABASE_URL"].startswith("postgresql://") and "@postgres:5432/" in gateway["environment"]["DATABASE_URL"]
    assert gateway["environment"]["APP_ENV"] == "production"
    for secret in ("JWT_SECRET_KEY", "METRICS_TOKEN"):
        assert gateway["environment"][secret].startswith(f"${{{secret}:?"), f"{secret} must have no default"
    assert "pg_isready" in services["postgres"]["healthcheck"]["test"]
    assert services["prometheus"]["environment"]["GATEWAY_METRICS_TARGET"] == "gateway:4001"
    for name, service in services.items():
        if "image" in service and name != "gateway":
            assert re.fullmatch(r"[\w./-]+:v?\d+\.\d+(\.\d+)?", service["image"]), f"{name}: pin the image version"
        for port in service.get("ports", []):
            assert port.startswith("127.0.0.1:"), f"{name} {port}: publish on loopback only"


def test_compose_mounts_exist(compose):
    for service in compose["services"].values():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0]
            if source.startswith("."):
                assert (COMPOSE.parent / source).exists(), source
            else:
                assert source in compose["volumes"], source


def test_systemd_unit_runs_gunicorn_from_the_venv_as_a_user():
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string((DEPLOY / "ai-chat-gateway.service").read_text())
    service = unit["Service"]
    assert service["User"] not in ("root", "") and service["Restart"] == "on-failure"
    assert service["ExecStart"].endswith("/.venv/bin/gunicorn -c gunicorn.conf.py wsgi:app")
    assert service["ExecReload"] == "/bin/kill -HUP $MAINPID"
    assert unit["Install"]["WantedBy"] == "multi-user.target"
