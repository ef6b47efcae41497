"""The image, run as a user would: non-root, read-only, against PostgreSQL and a model server on the host network."""
import uuid

import pytest
import requests

from tests.deploy.conftest import LIMITS, podman
from bench.fake_model import Script
from tests.support.client import GatewayClient
from tests.support.databases import PrivatePostgres
from tests.support.gateway import chat_env
from tests.support.servers import free_port, wait_until
from tests.support.streams import OpenStream

pytestmark = pytest.mark.slow

METRICS_TOKEN = "image-test-metrics-token"
DRAIN_DELAY, GRACE = 1, 3


class Container:
    def __init__(self, image: str, env: dict[str, str]):
        self.name = f"gateway-test-{uuid.uuid4().hex[:8]}"
        self.image, self.env = image, env

    def __enter__(self):
        flags = [arg for name, value in self.env.items() for arg in ("-e", f"{name}={value}")]
        # As the Kubernetes manifests run it: read-only root, a writable /tmp for the metrics files.
        podman("run", "-d", "--name", self.name, "--network", "host", "--read-only", "--tmpfs", "/tmp",
               *LIMITS, *flags, self.image)
        return self

    def __exit__(self, *exc):
        podman("rm", "-f", "-t", "0", self.name, check=False)

    def running(self) -> bool:
        state = podman("inspect", "--format", "{{.State.Running}}", self.name, check=False).stdout.strip()
        return state == "true"

    def logs(self) -> str:
        result = podman("logs", self.name, check=False)
        return result.stdout + result.stderr


def test_the_image_serves_as_non_root_and_drains_on_sigterm(gateway_image, fake_llm, _postgres, record_property):
    record_property("image_size_bytes", gateway_image.size_bytes)
    print(f"image {gateway_image.tag}: {gateway_image.size_bytes / 1e6:.0f} MB")
    database = PrivatePostgres()
    database.create_empty()  # the container's gunicorn master migrates it
    port, metrics_port = free_port(), free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**chat_env(fake_llm), "DATABASE_URL": database.url, "API_PORT": str(port),
           "METRICS_PORT": str(metrics_port), "JWT_SECRET_KEY": uuid.uuid4().hex * 2, "METRICS_TOKEN": METRICS_TOKEN,
           "PASSWORD_HASH_COST": "14", "RATE_LIMITS_ENABLED": "false",
           "DRAIN_DELAY_SECONDS": str(DRAIN_DELAY), "GUNICORN_GRACEFUL_TIMEOUT": str(GRACE)}
    try:
        with Container(gateway_image.tag, env) as container:
            def up():
                assert container.running(), container.logs()
                try:
                    return requests.get(f"{url}/livez", timeout=2).status_code == 200
                except requests.ConnectionError:
                    return False
            wait_until(up, timeout=60, interval=0.5, what="the container's /livez")
            assert podman("exec", container.name, "id", "-u").stdout.strip() == "10001"
            assert requests.get(f"{url}/readyz", timeout=5).json() == {"status": "ready", "reason": None}

            http = GatewayClient(url).register()
            reply = http.message(http.conversation(title="image"), "hello")
            assert reply["assistantMessage"]["content"] == "Hello, world!"

            metrics = f"http://127.0.0.1:{metrics_port}/metrics"
            assert requests.get(metrics, timeout=5).status_code == 401
            scrape = requests.get(metrics, headers={"Authorization": f"Bearer {METRICS_TOKEN}"}, timeout=5)
            assert scrape.status_code == 200 and "chat_completions_total" in scrape.text

            fake_llm.queue(Script(tokens=[f"t{i} " for i in range(400)], token_delay=0.05))
            stream = OpenStream(http, http.conversation(title="drain")).open()
            podman("kill", "--signal", "TERM", container.name)
            assert requests.get(f"{url}/readyz", timeout=5).json() == {"status": "unready", "reason": "draining"}
            stream.finished(timeout=DRAIN_DELAY + GRACE + 10)
            assert stream.broken is None and stream.events[-1]["error"]["code"] == "shutting_down"
            assert podman("wait", container.name, timeout=30).stdout.strip() == "0", container.logs()
    finally:
        database.drop()
