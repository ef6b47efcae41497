"""monitoring/deploy/docker-compose.yml, run with podman-compose: gateway, PostgreSQL and Redis come up together.

No container registry is reachable here, so docker-compose.offline.yml swaps the official PostgreSQL and Redis
images for ones made from Debian's packages (images/services.Containerfile, built by .ci/run). Prometheus and
Grafana have no such stand-in and are left out (`up gateway` starts only what the gateway depends on).
"""
import shutil
import subprocess
import uuid

import pytest
import requests

from tests.deploy.conftest import IN_CI, podman
from tests.support.client import GatewayClient
from tests.support.servers import ROOT, free_port, wait_until

pytestmark = pytest.mark.slow

DEPLOY = ROOT / "monitoring" / "deploy"
SERVICES_IMAGE = "localhost/gateway-services:bookworm"
COMPOSE_IMAGE = "localhost/ai-chat-gateway:local"  # docker-compose.yml's `image:` for the gateway
# runc and explicit limits for every container podman-compose starts, as for the image test.
CONTAINERS_CONF = """\
[containers]
default_ulimits = ["nofile=1024:1024", "nproc=1024:1024"]
[engine]
runtime = "runc"
"""


@pytest.fixture
def compose(tmp_path, gateway_image):
    if not shutil.which("podman-compose"):
        if IN_CI:
            pytest.fail("podman-compose is not installed; CI must run the compose stack (apt-get install podman-compose)")
        pytest.skip("podman-compose is not installed (Debian/Ubuntu: apt-get install podman-compose); CI runs this test")
    if podman("image", "exists", SERVICES_IMAGE, check=False).returncode != 0:
        hint = "podman build -f monitoring/deploy/images/services.Containerfile (see docker-compose.offline.yml)"
        if IN_CI:
            pytest.fail(f"{SERVICES_IMAGE} is missing; .ci/run builds it ({hint})")
        pytest.skip(f"{SERVICES_IMAGE} is missing ({hint})")
    podman("tag", gateway_image.tag, COMPOSE_IMAGE)
    (tmp_path / "containers.conf").write_text(CONTAINERS_CONF)
    project = f"gwtest{uuid.uuid4().hex[:8]}"
    env = {"PATH": "/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin", "HOME": str(tmp_path),
           "CONTAINERS_CONF": str(tmp_path / "containers.conf"),
           "JWT_SECRET_KEY": uuid.uuid4().hex * 2, "METRICS_TOKEN": "compose-test-metrics-token",
           "POSTGRES_PASSWORD": uuid.uuid4().hex, "GRAFANA_ADMIN_PASSWORD": uuid.uuid4().hex,
           "API_PORT": str(free_port()),
           "HOST_GATEWAY": "127.0.0.1"}  # no model is asked here; podman 4.3 only needs a valid address

    def run(*args, timeout=300):
        return subprocess.run(["podman-compose", "-p", project, "-f", str(DEPLOY / "docker-compose.yml"),
                               "-f", str(DEPLOY / "docker-compose.offline.yml"), *args],
                              env=env, capture_output=True, text=True, timeout=timeout)

    up = run("up", "-d", "gateway")
    try:
        yield project, f"http://127.0.0.1:{env['API_PORT']}", up
    finally:
        run("down", "-v", timeout=120)
        for service in ("gateway", "postgres", "redis"):
            podman("rm", "-f", "-t", "0", f"{project}_{service}_1", check=False)
        podman("network", "rm", "-f", f"{project}_default", check=False)  # podman-compose 1.0's down leaves it


def test_gateway_postgres_and_redis_come_up_together_and_the_gateway_answers(compose):
    project, url, up = compose

    def ready():
        try:
            return requests.get(f"{url}/readyz", timeout=2).status_code == 200
        except requests.ConnectionError:
            return False
    try:
        wait_until(ready, timeout=120, interval=1, what="the compose gateway's /readyz")
    except TimeoutError:
        logs = podman("logs", "--tail", "20", f"{project}_gateway_1", check=False)
        raise AssertionError(up.stdout[-3000:] + up.stderr[-3000:] + logs.stdout + logs.stderr) from None

    running = podman("ps", "--filter", f"label=io.podman.compose.project={project}", "--format", "{{.Names}}").stdout
    assert set(running.split()) == {f"{project}_{s}_1" for s in ("gateway", "postgres", "redis")}

    # A sign-up writes to PostgreSQL and counts against the sign-up rate limit kept in Redis.
    http = GatewayClient(url).register()
    assert http.get("/auth/me").json()["email"] == http.user["email"]
    keys = podman("exec", f"{project}_redis_1", "redis-cli", "dbsize").stdout.strip()
    assert int(keys) > 0, "the gateway kept no rate-limit counter in Redis"
    tables = podman("exec", f"{project}_postgres_1", "psql", "-U", "gateway", "-d", "gateway", "-Atc",
                    "SELECT count(*) FROM users").stdout.strip()
    assert tables == "1"
