"""The probe's login-limit bypass, on real gunicorn with 2 workers sharing Redis (issue 20, 4).

The probe alternated one password guess with a `/auth/login` body nested 5,000
deep: the account key raised, Flask-Limiter took that for a storage outage and
every worker counted afresh in memory (19 guesses in 4 s against 10 a minute).
"""
import itertools

import pytest
import redis
import requests

from tests.admission.test_limit_keys import CRAFTED_BODIES, GUESSES_ALLOWED, LIMITS, REDIS_URL
from tests.support.client import GatewayClient
from tests.support.servers import Gunicorn

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_database_url):
    redis.Redis.from_url(REDIS_URL).flushdb()
    env = {**LIMITS, "RATE_LIMIT_STORAGE_URI": REDIS_URL, "GUNICORN_ACCESS_LOG": ""}
    with Gunicorn(tmp_path_factory.mktemp("bypass"), database_url=module_database_url, workers=2, env=env) as server:
        server.wait_for_workers(2)
        yield server


def test_after_the_limit_every_guess_is_429_whatever_comes_between(server):
    victim = GatewayClient(server.url).register().user["email"]
    guesses, junk_statuses = [], []
    junk = itertools.cycle(CRAFTED_BODIES.values())
    for _ in range(GUESSES_ALLOWED + 10):
        # A new connection for each request, so the kernel spreads them over both workers.
        guesses.append(requests.post(f"{server.url}/auth/login", timeout=10,
                                     json={"email": victim, "password": "a wrong guess"}).status_code)
        for _ in range(3):
            junk_statuses.append(requests.post(f"{server.url}/auth/login", data=next(junk), timeout=10,
                                               headers={"Content-Type": "application/json"}).status_code)
    assert guesses == [401] * GUESSES_ALLOWED + [429] * 10
    assert all(400 <= status < 500 for status in junk_statuses), junk_statuses
    log = server.log()
    assert "in-memory" not in log and "Traceback" not in log
