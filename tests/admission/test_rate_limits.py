"""Rate limits: 429 in the error contract with Retry-After, counted by limit name, shared through Redis."""
import uuid

import pytest
import redis
from prometheus_client import REGISTRY

from bench.fake_model import Script
from tests.support import redisdb
from tests.test_errors import assert_error

# A database of its own (one per parallel test process): these tests flush it.
REDIS_URL = redisdb.redis_url(redisdb.RATE_LIMITS)
# Windows of a day: the limiter's sliding window counter weighs the previous window by the part of it still
# in view, so a test whose requests straddle a window's boundary (one in 60 for a minute, run in a second)
# would see one more request pass.
LIMITS = {"RATE_LIMITS_ENABLED": "true", "RATE_LIMIT_LOGIN_ADDRESS": "6/day", "RATE_LIMIT_LOGIN_ACCOUNT": "3/day",
          "RATE_LIMIT_REGISTER_ADDRESS": "4/day", "RATE_LIMIT_CHAT_USER": "2/day"}


def hits(name):
    return REGISTRY.get_sample_value("rate_limit_hits_total", {"limit": name}) or 0


@pytest.fixture(params=["memory", "redis"])
def app_overrides(request):
    if request.param == "memory":
        return {**LIMITS, "RATE_LIMIT_STORAGE_URI": "memory://"}
    try:
        redis.Redis.from_url(REDIS_URL, socket_connect_timeout=1).ping()
    except redis.RedisError:
        pytest.fail("Redis is not reachable at 127.0.0.1:6379 (bash .ci/run starts it)")
    redis.Redis.from_url(REDIS_URL).flushdb()
    return {**LIMITS, "RATE_LIMIT_STORAGE_URI": REDIS_URL}


def login(client, email, password="wrong password"):
    return client.post("/auth/login", json={"email": email, "password": password})


def test_wrong_passwords_for_one_account_hit_the_account_limit(client, auth):
    victim = auth.register()  # registering counts against register_address, not login
    before = hits("login_account")
    statuses = [login(client, victim.email).status_code for _ in range(5)]
    assert statuses == [401, 401, 401, 429, 429]
    response = login(client, victim.email, "correct horse battery")  # even the right password waits
    error = assert_error(response, 429, "too_many_requests")
    assert int(response.headers["Retry-After"]) > 0 and "day" in error["message"]
    assert hits("login_account") - before == 3


def test_many_accounts_from_one_address_hit_the_address_limit(client):
    before = hits("login_address")
    statuses = [login(client, f"{uuid.uuid4().hex}@example.com").status_code for _ in range(8)]
    assert statuses == [401] * 6 + [429] * 2
    assert hits("login_address") - before == 2


def test_guessing_the_password_with_a_stolen_access_token_is_limited_like_logins(client, auth):
    victim = auth.register()
    before = hits("password_user")
    statuses = [client.post("/auth/password", json={"currentPassword": "guess number %d" % i, "newPassword": "x" * 12},
                            headers=victim.headers).status_code for i in range(5)]
    assert statuses == [403, 403, 403, 429, 429]
    assert hits("password_user") - before == 2


def test_sign_up_floods_from_one_address_are_limited(client, db_session):
    statuses = [client.post("/auth/register", json={"email": f"{uuid.uuid4().hex}@example.com",
                                                    "password": "long enough"}).status_code for _ in range(6)]
    assert statuses == [201] * 4 + [429] * 2


def send(client, path, user, seen: list | None = None) -> int:
    response = client.post(path, json={"content": "hi"}, headers=user.headers)
    response.get_data()  # a stream is read to its end, as a client would
    if seen is not None:  # what the limiter said of it, for a failure's message
        seen.append((path.rsplit("/", 1)[-1], response.status_code, response.headers.get("X-RateLimit-Remaining"),
                     response.headers.get("X-RateLimit-Reset")))
    return response.status_code


def test_chat_requests_are_limited_per_user_not_per_address(client, auth, fake_llm, app):
    """Each user gets the limit (2), then 429s; the second user, from the same address, is not held by the first's.

    The limiter's sliding window counter is an approximation by design: a hit it files under the window before
    weighs less, so one request more than the limit may pass. Hence "a 429 within one extra request".
    """
    fake_llm.script = Script(tokens=["ok"])
    first, second = auth.register(), auth.register()
    statuses, seen = {}, []
    for user in (first, second):
        conversation = client.post("/conversations", json={}, headers=user.headers).get_json()["id"]
        statuses[user.id] = [send(client, f"/conversations/{conversation}/{path}", user, seen)
                             for path in ("messages", "stream", "messages", "messages")]
    for got in statuses.values():
        assert got[:2] == [200, 200] and 429 in got[2:], seen
        assert set(got[got.index(429):]) == {429}, seen  # once refused, refused


@pytest.fixture
def app_config(app_config, fake_llm):
    return {**app_config, "DEFAULT_MODEL": "llama3.1", "OLLAMA_BASE_URL": fake_llm.ollama_url}


@pytest.mark.slow
def test_redis_shares_the_counters_across_workers(tmp_path):
    """Three workers, one limit: with Redis exactly the limit passes, whichever worker answers."""
    import requests

    from tests.support.servers import Gunicorn

    redis.Redis.from_url(REDIS_URL).flushdb()
    env = {**LIMITS, "RATE_LIMIT_STORAGE_URI": REDIS_URL, "RATE_LIMIT_LOGIN_ACCOUNT": "5/day"}
    with Gunicorn(tmp_path, workers=3, env=env) as server:
        server.wait_for_workers(3)
        statuses = []
        for _ in range(15):  # a new connection each time, so the kernel spreads them over the workers
            statuses.append(requests.post(f"{server.url}/auth/login", timeout=10,
                                          json={"email": "target@example.com", "password": "guess"}).status_code)
        scraped = requests.get(server.metrics_url, timeout=10).text
    assert statuses == [401] * 5 + [429] * 10
    assert 'rate_limit_hits_total{limit="login_account"} 10.0' in scraped
