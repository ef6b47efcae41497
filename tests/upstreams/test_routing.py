"""The router in process: failover before the first token, what is not retried, fallbacks, ejection, the 502."""
import json

import pytest
from prometheus_client import REGISTRY

from bench.fake_model import Script, closed_port_url
from tests.support.apps import close_app
from tests.support.sse import parse_sse

DEAD = "dead"


@pytest.fixture
def app_config(app_config, fake_llm, tmp_path):
    live, dead = fake_llm.ollama_url, closed_port_url()
    path = tmp_path / "models.json"
    path.write_text(json.dumps({"default_model": "llama3.1", "models": {
        "llama3.1": {"provider": "ollama", "upstreams": [{"name": DEAD, "base_url": dead},
                                                         {"name": "live", "base_url": live}]},
        "pair": {"provider": "ollama", "upstream_model": "llama3.1",
                 "upstreams": [{"name": "one", "base_url": live}, {"name": "two", "base_url": live}]},
        "primary": {"provider": "ollama", "base_url": dead, "upstream_model": "llama3.1", "fallbacks": ["backup"]},
        "backup": {"provider": "openai", "base_url": fake_llm.openai_url, "upstream_model": "gpt-test"},
    }}))
    return {**app_config, "MODELS_FILE": str(path), "UPSTREAM_EJECT_AFTER": "2", "UPSTREAM_COOLDOWN_SECONDS": "60",
            "SSE_HEARTBEAT_SECONDS": "2"}


@pytest.fixture
def conversation(client, user):
    return client.post("/conversations", json={}, headers=user.headers).get_json()["id"]


def attempts_on(model, upstream, outcome):
    return REGISTRY.get_sample_value("chat_upstream_requests_total",
                                     {"model": model, "upstream": upstream, "outcome": outcome}) or 0


def test_a_dead_upstream_is_failed_over_then_ejected(client, user, conversation):
    before = attempts_on("llama3.1", DEAD, "connect")
    for _ in range(6):
        response = client.post(f"/conversations/{conversation}/messages", json={"content": "hi"}, headers=user.headers)
        assert response.status_code == 200
        meta = response.get_json()["assistantMessage"]["meta"]
        assert (meta["model"], meta["upstream"]) == ("llama3.1", "live")
    # Tried until ejected (2 failures in a row), then left alone for its cooldown.
    assert attempts_on("llama3.1", DEAD, "connect") - before == 2
    health = {u["name"]: u for u in client.get("/health").get_json()["upstreams"] if u["model"] == "llama3.1"}
    assert health[DEAD]["state"] == "ejected" and health["live"]["state"] == "healthy"


def test_a_stream_fails_over_before_its_first_token(client, user, conversation):
    response = client.post(f"/conversations/{conversation}/stream", json={"content": "hi"}, headers=user.headers)
    events = parse_sse(response.data)
    assert events[-1]["type"] == "end" and events[-1]["message"]["meta"]["upstream"] == "live"


@pytest.mark.parametrize("status, tried", [(500, 2), (429, 2), (408, 2), (400, 1), (404, 1)])
def test_what_is_retried(client, user, conversation, fake_llm, status, tried):
    fake_llm.script = Script(status=status)
    response = client.post(f"/conversations/{conversation}/messages", json={"content": "hi", "model": "pair"},
                           headers=user.headers)
    assert response.status_code == 502
    attempts = response.get_json()["error"]["details"]["attempts"]
    assert len(fake_llm.requests) == len(attempts) == tried
    assert {a["upstream"] for a in attempts} <= {"one", "two"}


def test_the_fallback_model_answers_and_says_so(client, user):
    response = client.post("/v1/chat/completions", headers=user.headers,
                           json={"model": "primary", "messages": [{"role": "user", "content": "hi"}]})
    assert response.status_code == 200 and response.get_json()["model"] == "backup"
    streamed = client.post("/v1/chat/completions", headers=user.headers, json={
        "model": "primary", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    chunks = [line for line in streamed.data.split(b"\n") if line.startswith(b"data: {")]
    assert json.loads(chunks[-1][6:])["model"] == "backup" and streamed.data.endswith(b"data: [DONE]\n\n")


def test_embeddings_go_through_the_router(client, user):
    response = client.post("/v1/embeddings", headers=user.headers, json={"model": "llama3.1", "input": "hi"})
    assert response.status_code == 200 and len(response.get_json()["data"]) == 1


def test_attempts_are_capped(app_config, user, fake_llm):
    from app import create_app
    capped = create_app({**app_config, "PROVIDER_MAX_ATTEMPTS": "1"})
    try:
        client = capped.test_client()
        conversation = client.post("/conversations", json={}, headers=user.headers).get_json()["id"]
        fake_llm.script = Script(status=500)
        response = client.post(f"/conversations/{conversation}/messages", json={"content": "hi", "model": "pair"},
                               headers=user.headers)
    finally:
        close_app(capped)
    assert response.status_code == 502 and len(response.get_json()["error"]["details"]["attempts"]) == 1
    assert len(fake_llm.requests) == 1
