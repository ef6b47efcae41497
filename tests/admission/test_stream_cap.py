"""CHAT_MAX_STREAMS_PER_USER: the streams one user holds open at once, in one process and across gunicorn workers."""
import http.client
import json

import pytest
import redis
import requests
from prometheus_client import REGISTRY

from bench.fake_model import Script
from tests.support.gateway import gateway
from tests.support.servers import wait_until
from tests.support.workers import one_connection_per_worker
from tests.test_errors import assert_error
from tests.admission.test_rate_limits import REDIS_URL

LIMITS = {"RATE_LIMITS_ENABLED": "true", "RATE_LIMIT_CHAT_USER": "1000/minute", "CHAT_MAX_STREAMS_PER_USER": "2"}
# Long enough to stay open while a test looks, short enough that nothing waits for it to end.
SLOW = Script(tokens=["tick"] * 200, token_delay=0.1)


def hits() -> float:
    return REGISTRY.get_sample_value("rate_limit_hits_total", {"limit": "chat_streams_user"}) or 0


@pytest.fixture
def app_overrides():
    return LIMITS


@pytest.fixture
def app_config(app_config, fake_llm):
    fake_llm.script = SLOW
    return {**app_config, "DEFAULT_MODEL": "llama3.1", "OLLAMA_BASE_URL": fake_llm.ollama_url}


@pytest.fixture
def open_stream(client, user):
    """Start a stream for `user` and leave it open (unread); closed at the end of the test."""
    opened = []

    def start(kind="conversation", who=None):
        headers = (who or user).headers
        if kind == "conversation":
            conversation = client.post("/conversations", json={}, headers=headers).get_json()["id"]
            response = client.post(f"/conversations/{conversation}/stream", json={"content": "hi"},
                                   headers=headers, buffered=False)
        else:
            response = client.post("/v1/chat/completions", headers=headers, buffered=False,
                                   json={"model": "llama3.1", "stream": kind == "v1-stream",
                                         "messages": [{"role": "user", "content": "hi"}]})
        opened.append(response)
        return response

    yield start
    for response in opened:
        response.close()


def test_streams_over_the_cap_get_429_until_one_closes(open_stream):
    before = hits()
    first, second = open_stream(), open_stream()
    assert first.status_code == second.status_code == 200
    refused = open_stream()
    error = assert_error(refused, 429, "too_many_streams")
    assert error["details"] == {"limit": 2} and int(refused.headers["Retry-After"]) > 0
    assert hits() - before == 1
    first.close()  # the client leaves: its slot is free at once
    assert open_stream().status_code == 200
    assert open_stream().status_code == 429


def test_openai_streams_share_the_cap_and_whole_replies_do_not_count(open_stream, fake_llm):
    assert open_stream("v1-stream").status_code == 200
    assert open_stream().status_code == 200
    refused = open_stream("v1-stream")
    assert (refused.status_code, refused.get_json()["error"]["code"]) == (429, "too_many_streams")
    fake_llm.script = Script(tokens=["ok"])
    assert open_stream("v1-whole").status_code == 200


def test_the_cap_is_per_user(open_stream, auth):
    open_stream(), open_stream()
    other = auth.register()
    assert open_stream(who=other).status_code == 200


def test_a_stream_that_ends_frees_its_slot(client, user, fake_llm, open_stream):
    fake_llm.script = Script(tokens=["short"])
    for _ in range(4):
        response = open_stream()
        assert response.status_code == 200
        response.get_data()  # read to the end, as a client would
        response.close()


@pytest.mark.parametrize("app_overrides", [{**LIMITS, "CHAT_MAX_STREAMS_PER_USER": "0"},
                                           {**LIMITS, "RATE_LIMITS_ENABLED": "false"}])
def test_zero_or_limits_off_means_no_cap(open_stream):
    assert [open_stream().status_code for _ in range(4)] == [200] * 4


def start_stream(connection: http.client.HTTPConnection, token: str, conversation: str) -> http.client.HTTPResponse:
    connection.request("POST", f"/conversations/{conversation}/stream", body=json.dumps({"content": "hi"}),
                       headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    return connection.getresponse()


@pytest.mark.slow
def test_redis_shares_the_cap_across_workers_and_a_closed_stream_frees_its_slot(tmp_path, fake_llm):
    """One slot, two workers: a stream open on one worker refuses the next on the other, until it is closed."""
    redis.Redis.from_url(REDIS_URL).flushdb()
    fake_llm.script = SLOW
    env = {**LIMITS, "CHAT_MAX_STREAMS_PER_USER": "1", "RATE_LIMIT_STORAGE_URI": REDIS_URL}
    with gateway(tmp_path, fake_llm, workers=2, env=env) as server:
        server.wait_for_workers(2)
        session = requests.post(f"{server.url}/auth/register", timeout=10,
                                json={"email": "streamer@example.com", "password": "correct horse battery"}).json()
        token, headers = session["accessToken"], {"Authorization": f"Bearer {session['accessToken']}"}
        conversation = requests.post(f"{server.url}/conversations", json={}, headers=headers, timeout=10).json()["id"]
        (first_worker, holder), (_, other) = one_connection_per_worker(server, 2).items()
        refusals = 0
        try:
            streaming = start_stream(holder, token, conversation)
            assert streaming.status == 200 and streaming.fp.readline()  # open, on the first worker
            refused = start_stream(other, token, conversation)
            body = json.loads(refused.read())
            refusals += 1
            assert (refused.status, body["error"]["code"]) == (429, "too_many_streams")
            assert refused.getheader("Retry-After")
            holder.close()  # the client leaves; the worker notices at its next write

            def other_worker_streams() -> bool:
                nonlocal refusals
                response = start_stream(other, token, conversation)
                if response.status == 429:
                    response.read()
                    refusals += 1
                    return False
                assert response.status == 200 and response.fp.readline()
                return True

            wait_until(other_worker_streams, timeout=10, what="the slot to be released")
        finally:
            holder.close()
            other.close()
        scraped = requests.get(server.metrics_url, timeout=10).text
    assert f'rate_limit_hits_total{{limit="chat_streams_user"}} {float(refusals)}' in scraped
