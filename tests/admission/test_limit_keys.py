"""Limits cannot be switched off by input, and an unreachable storage refuses instead of forgetting (issue 20, 4)."""
import json

import pytest
import redis
from sqlalchemy import func, select

from app.admission import rate_limits as limits
from app.models import User
from tests.support import redisdb
from tests.support.apps import close_app
from tests.test_errors import assert_error

# A database of its own (one per parallel test process), apart from tests/test_rate_limits.py's: these tests flush it.
REDIS_URL = redisdb.redis_url(redisdb.LIMIT_KEYS)
# Nothing listens on port 1: a Redis that is configured and unreachable.
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"
GUESSES_ALLOWED = 10
# Windows of a day, as in test_rate_limits.py: the sliding window counter lets one guess more through when
# a test straddles a window's boundary, which for a minute's window is one run in a few dozen.
LIMITS = {"RATE_LIMITS_ENABLED": "true", "RATE_LIMIT_LOGIN_ACCOUNT": f"{GUESSES_ALLOWED}/day",
          # Only the account's limit is under test: the junk between the guesses comes from the same address.
          "RATE_LIMIT_LOGIN_ADDRESS": "1000/day"}

# Bodies a client controls completely; none may make a key function raise.
CRAFTED_BODIES = {
    "deep nesting": b"[" * 5000 + b"]" * 5000,
    "deep objects": b'{"email": ' * 3000 + b"1" + b"}" * 3000,
    "not UTF-8": b'{"email": "\xff\xfe@example.com"}',
    "lone surrogate": b'{"email": "\\ud800@example.com"}',
    "NUL": b'{"email": "a\\u0000@example.com"}',
    "duplicate keys": b'{"email": "a@example.com", "email": "b@example.com"}',
    "email a number": b'{"email": 5}',
    "email a list": b'{"email": ["a@example.com"]}',
    "email an object": b'{"email": {"$ne": null}}',
    "huge number": b'{"email": 1' + b"0" * 5000 + b"}",
    "not JSON": b"{not json",
    "a bare string": b'"a@example.com"',
    "empty": b"",
}


@pytest.mark.parametrize("body", CRAFTED_BODIES.values(), ids=CRAFTED_BODIES.keys())
def test_the_account_key_never_raises(app, body):
    with app.test_request_context("/auth/login", method="POST", data=body, content_type="application/json"):
        key = limits.account_key()
    assert key.startswith(("account:", "address:"))


@pytest.fixture(params=["memory", "redis"])
def app_overrides(request):
    if request.param == "memory":
        return {**LIMITS, "RATE_LIMIT_STORAGE_URI": "memory://"}
    redis.Redis.from_url(REDIS_URL).flushdb()
    return {**LIMITS, "RATE_LIMIT_STORAGE_URI": REDIS_URL}


def guess(client, email):
    return client.post("/auth/login", json={"email": email, "password": "wrong password"}).status_code


# The probe's body, and one of each other kind that once made a key raise or a storage refuse the key.
BETWEEN_GUESSES = ("deep nesting", "not UTF-8", "lone surrogate", "email an object")


@pytest.mark.parametrize("junk", [CRAFTED_BODIES[name] for name in BETWEEN_GUESSES], ids=BETWEEN_GUESSES)
def test_after_the_limit_every_guess_is_429_whatever_comes_between(client, auth, junk):
    victim = auth.register()
    statuses = []
    for _ in range(GUESSES_ALLOWED + 5):
        statuses.append(guess(client, victim.email))
        assert client.post("/auth/login", data=junk, content_type="application/json").status_code < 500
    assert statuses == [401] * GUESSES_ALLOWED + [429] * 5


@pytest.mark.parametrize("app_overrides", [{**LIMITS, "RATE_LIMIT_STORAGE_URI": UNREACHABLE_REDIS}])
def test_an_unreachable_storage_refuses_logins_and_sign_ups(client, db_session):
    login = client.post("/auth/login", json={"email": "a@example.com", "password": "wrong password"})
    sign_up = client.post("/auth/register", json={"email": "new@example.com", "password": "long enough"})
    for response in (login, sign_up):
        assert_error(response, 503, "rate_limit_unavailable")
        assert int(response.headers["Retry-After"]) >= 1
    assert db_session.scalar(select(func.count()).select_from(User)) == 0


@pytest.mark.parametrize("app_overrides", [{**LIMITS, "RATE_LIMIT_STORAGE_URI": UNREACHABLE_REDIS,
                                            "RATE_LIMIT_FAIL_OPEN": "true"}])
def test_fail_open_counts_in_memory_while_the_storage_is_unreachable(client):
    statuses = [guess(client, "someone@example.com") for _ in range(GUESSES_ALLOWED + 1)]
    assert statuses == [401] * GUESSES_ALLOWED + [429]


def test_crafted_bodies_are_json(client):
    """The junk above gets the JSON contract, not a 500: it is refused as input, never as an outage."""
    for body in CRAFTED_BODIES.values():
        response = client.post("/auth/login", data=body, content_type="application/json")
        assert 400 <= response.status_code < 500 and json.loads(response.data)["error"]["code"]


@pytest.mark.parametrize("app_overrides", [{**LIMITS, "RATE_LIMIT_STORAGE_URI": "memory://"}])
def test_other_apps_in_the_process_leave_this_apps_limits_alone(client, auth, app_config):
    """Another app made in the process (limits off; fail-open with a dead storage) does not switch ours off.

    The limiter is declared once at import; its storage and failure state used to be one per process, so a
    fail-open app that found its storage dead left every later app counting nothing.
    """
    from app import create_app

    victim = auth.register()
    others = [create_app({**app_config, "RATE_LIMITS_ENABLED": "false"}),
              create_app({**app_config, "RATE_LIMIT_STORAGE_URI": UNREACHABLE_REDIS, "RATE_LIMIT_FAIL_OPEN": "true"})]
    assert guess(others[1].test_client(), "someone@example.com") == 401  # counted in memory: its storage is dead
    statuses = [guess(client, victim.email) for _ in range(GUESSES_ALLOWED + 2)]
    assert statuses == [401] * GUESSES_ALLOWED + [429] * 2
    closed = create_app({**app_config, "RATE_LIMIT_STORAGE_URI": UNREACHABLE_REDIS})
    assert_error(closed.test_client().post("/auth/login", json={"email": "a@example.com", "password": "x" * 12}),
                 503, "rate_limit_unavailable")  # fail-closed, whatever the app before it allowed
    for other in (*others, closed):
        close_app(other)
