"""The OpenAI-compatible API through the real `openai` package, against a real three-worker gunicorn."""
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from bench.fake_model import Script
from tests.support.gateway import MODEL, gateway, logged_in
from tests.support.lazy import Lazy
from tests.support.metrics import scrape
from tests.support.servers import wait_until
from tests.support.workers import one_connection_per_worker, request, worker_serving

pytestmark = pytest.mark.slow
openai = Lazy("openai")
OPENAI_DOC = Path(__file__).resolve().parents[2] / "docs" / "openai.md"
WORKERS = 3
OPENAI_MODEL = "gpt-test"
UPSTREAM_KEY = "sk-upstream-secret"
HELLO = [{"role": "user", "content": "Hello?"}]


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_database_url, _fake_llm_server):
    """One gateway for the module: Ollama's llama3.1 and an OpenAI-compatible gpt-test, both the fake provider."""
    env = {"OPENAI_BASE_URL": _fake_llm_server.openai_url, "OPENAI_MODELS": OPENAI_MODEL,
           "OPENAI_API_KEY": UPSTREAM_KEY}
    with gateway(tmp_path_factory.mktemp("gateway"), _fake_llm_server, database_url=module_database_url,
                 workers=WORKERS, env=env) as server:
        yield server


@pytest.fixture
def http(server):
    """A new user, logged in with a password (a JWT)."""
    return logged_in(server)


@pytest.fixture
def api_key(http):
    response = http.post("/api-keys", json={"name": "sdk"})
    assert response.status_code == 201, response.text
    return response.json()


def sdk(server, key: str) -> "openai.OpenAI":
    return openai.OpenAI(base_url=server.url + "/v1", api_key=key, max_retries=0, timeout=30)


@pytest.fixture
def client(server, api_key):
    with sdk(server, api_key["key"]) as client:
        yield client


def test_models_list_is_the_catalogue(client):
    models = client.models.list()
    assert [(m.id, m.owned_by, m.object) for m in models.data] == [
        (OPENAI_MODEL, "openai", "model"), (MODEL, "ollama", "model")]


@pytest.mark.parametrize("model", [MODEL, OPENAI_MODEL])
def test_a_whole_completion_has_the_providers_usage_and_maps_parameters(client, fake_llm, model):
    fake_llm.script = Script(tokens=["Hel", "lo"], prompt_tokens=9, completion_tokens=2, finish_reason="length")
    # Metadata Ollama has no use for is dropped there; other unknown parameters reach OpenAI-compatible servers.
    extra = {"metadata": {"team": "sdk"}} if model == MODEL else {"frobnicate": True}
    reply = client.chat.completions.create(
        model=model, messages=[{"role": "developer", "content": "Be brief."},
                               {"role": "user", "content": [{"type": "text", "text": "Hi"}]}],
        temperature=0.2, top_p=0.9, max_completion_tokens=50, stop=["END"], seed=7, user="end-user-1",
        logprobs=False, extra_body=extra)

    assert reply.object == "chat.completion" and reply.model == model and reply.id.startswith("chatcmpl-")
    assert reply.choices[0].message.role == "assistant" and reply.choices[0].message.content == "Hello"
    assert reply.choices[0].finish_reason == "length"
    assert (reply.usage.prompt_tokens, reply.usage.completion_tokens, reply.usage.total_tokens) == (9, 2, 11)
    sent = fake_llm.last_request
    assert sent.body["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    if model == MODEL:
        assert sent.protocol == "ollama" and "Authorization" not in sent.headers
        assert sent.body["options"] == {"temperature": 0.2, "top_p": 0.9, "num_predict": 50, "stop": ["END"], "seed": 7}
        assert "metadata" not in sent.body and "logprobs" not in sent.body
    else:
        # The upstream gets the gateway's own key for it, never the client's.
        assert sent.protocol == "openai" and sent.headers["Authorization"] == f"Bearer {UPSTREAM_KEY}"
        keys = ("temperature", "top_p", "max_completion_tokens", "stop", "seed", "user", "logprobs", "frobnicate")
        assert {k: sent.body[k] for k in keys} == {
            "temperature": 0.2, "top_p": 0.9, "max_completion_tokens": 50, "stop": ["END"], "seed": 7,
            "user": "end-user-1", "logprobs": False, "frobnicate": True}


@pytest.mark.parametrize("model", [MODEL, OPENAI_MODEL])
def test_a_streamed_completion_in_chunks_with_a_final_usage_chunk(client, fake_llm, model):
    fake_llm.script = Script(tokens=["Hel", "lo", "!"], prompt_tokens=12, completion_tokens=3)
    chunks = list(client.chat.completions.create(model=model, messages=HELLO, stream=True,
                                                 stream_options={"include_usage": True}))

    assert {c.object for c in chunks} == {"chat.completion.chunk"} and len({c.id for c in chunks}) == 1
    assert chunks[0].choices[0].delta.role == "assistant"
    assert "".join(c.choices[0].delta.content or "" for c in chunks if c.choices) == "Hello!"
    with_choices = [c for c in chunks if c.choices]
    assert [c.choices[0].finish_reason for c in with_choices] == [None] * (len(with_choices) - 1) + ["stop"]
    assert chunks[-1].choices == []
    assert (chunks[-1].usage.prompt_tokens, chunks[-1].usage.completion_tokens, chunks[-1].usage.total_tokens) == (12, 3, 15)
    assert all(c.usage is None for c in chunks[:-1])


def test_the_raw_stream_ends_with_done_and_has_no_usage_chunk_unless_asked(server, api_key, fake_llm):
    response = requests.post(f"{server.url}/v1/chat/completions", json={"model": MODEL, "messages": HELLO, "stream": True},
                             headers={"Authorization": f"Bearer {api_key['key']}"}, timeout=30)
    assert response.status_code == 200 and response.headers["Content-Type"].startswith("text/event-stream")
    data = [line for line in response.content.split(b"\n") if line.startswith(b"data: ")]
    assert data[-1] == b"data: [DONE]" and b'"usage"' not in response.content
    assert b'"finish_reason": "stop"' in data[-2]


def test_unknown_models_and_unsupported_parameters_raise_the_sdks_exceptions(client, fake_llm):
    for stream in (False, True):
        with pytest.raises(openai.NotFoundError) as raised:
            client.chat.completions.create(model="gpt-17-ultra", messages=HELLO, stream=stream)
        assert raised.value.code == "model_not_found" and raised.value.param == "model"
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=MODEL, messages=HELLO, n=2)
    assert raised.value.param == "n" and raised.value.body["type"] == "invalid_request_error"
    with pytest.raises(openai.BadRequestError) as raised:
        client.chat.completions.create(model=MODEL, messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "http://127.0.0.1/cat.png"}}]}])
    assert raised.value.param == "messages"
    assert fake_llm.requests == []  # nothing reached the provider


def test_provider_failures_raise_as_server_errors_before_and_during_the_stream(client, fake_llm):
    fake_llm.script = Script(status=500)
    with pytest.raises(openai.InternalServerError) as raised:
        client.chat.completions.create(model=MODEL, messages=HELLO)
    assert raised.value.status_code == 502 and raised.value.code == "provider_error"
    fake_llm.script = Script(tokens=["a", "b", "c", "d"], fail_after=2)
    received = []
    with pytest.raises(openai.APIError, match="provider"):
        for chunk in client.chat.completions.create(model=MODEL, messages=HELLO, stream=True):
            received.append(chunk.choices[0].delta.content)
    assert received == ["", "a", "b"]


def test_an_access_token_works_as_the_api_key(server, http, fake_llm):
    with sdk(server, http.headers["Authorization"].removeprefix("Bearer ")) as client:
        assert client.chat.completions.create(model=MODEL, messages=HELLO).choices[0].message.content == "Hello, world!"
    with sdk(server, "not-a-token") as client, pytest.raises(openai.AuthenticationError):
        client.models.list()


def test_a_revoked_key_is_refused_by_the_next_request_on_every_worker(server, http, api_key, fake_llm):
    headers = {"Authorization": f"Bearer {api_key['key']}"}
    connections = one_connection_per_worker(server, WORKERS)
    try:
        for connection in connections.values():  # every worker has served the key
            assert request(connection, "GET", "/v1/models", headers)[0] == 200

        assert http.delete(f"/api-keys/{api_key['id']}").status_code == 204

        for pid, connection in connections.items():
            status, body = request(connection, "GET", "/v1/models", headers)
            assert (status, body["error"]["code"], body["error"]["type"]) == (401, "invalid_api_key", "invalid_request_error")
            assert worker_serving(server, connection) == pid  # the same worker that accepted the key before
    finally:
        for connection in connections.values():
            connection.close()
    for _ in range(2 * WORKERS):  # and the SDK, on fresh connections
        with sdk(server, api_key["key"]) as client:
            with pytest.raises(openai.AuthenticationError):
                client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    assert fake_llm.requests == []


def test_a_client_closing_the_stream_early_cancels_the_upstream(server, client, fake_llm):
    fake_llm.script = Script(tokens=[f"t{i} " for i in range(100)], token_delay=0.05)
    labels = {"model": MODEL, "streaming": "true", "outcome": "client_disconnect"}
    before = scrape(server.metrics_url).value("chat_completions_total", **labels)

    stream = client.chat.completions.create(model=MODEL, messages=HELLO, stream=True)
    for index, _chunk in enumerate(stream):
        if index == 5:
            break
    stream.close()

    assert fake_llm.wait_until(lambda: fake_llm.requests and fake_llm.last_request.client_closed_at is not None,
                               timeout=5), "the upstream request was not cancelled"
    assert fake_llm.last_request.tokens_sent < 100
    wait_until(lambda: scrape(server.metrics_url).value("chat_completions_total", **labels) == before + 1,
               timeout=5, what="the disconnect to be counted")


def chat_deltas(after, before) -> dict:
    """Changes of every chat_* counter and histogram count."""
    return {key: value - before.get(key, 0.0) for key, value in after.items()
            if key[0].startswith("chat_") and key[0].endswith(("_total", "_count")) and value != before.get(key, 0.0)}


def test_v1_calls_are_counted_exactly_like_the_conversation_routes(server, http, client, fake_llm):
    conversation = http.conversation()
    fake_llm.script = Script(tokens=["a", "b", "c"], prompt_tokens=11, completion_tokens=3)

    before = scrape(server.metrics_url)
    http.message(conversation)
    http.stream_events(conversation)
    fake_llm.queue(Script(status=500))
    assert http.post(f"/conversations/{conversation}/messages", json={"content": "x"}).status_code == 502
    middle = scrape(server.metrics_url)
    client.chat.completions.create(model=MODEL, messages=HELLO)
    list(client.chat.completions.create(model=MODEL, messages=HELLO, stream=True))
    fake_llm.queue(Script(status=500))
    with pytest.raises(openai.InternalServerError):
        client.chat.completions.create(model=MODEL, messages=HELLO)
    after = scrape(server.metrics_url)

    through_conversations, through_v1 = chat_deltas(middle, before), chat_deltas(after, middle)
    assert through_v1 == through_conversations
    assert after.total("chat_completions_total", model=MODEL) - middle.total("chat_completions_total", model=MODEL) == 3
    assert after.total("chat_completion_tokens_total", model=MODEL, type="prompt") - middle.total(
        "chat_completion_tokens_total", model=MODEL, type="prompt") == 22
    assert after.total("chat_completions_in_flight") == 0
    route = {"method": "POST", "route": "/v1/chat/completions"}
    wait_until(lambda: (lambda s: (s.value("http_requests_total", status_code="200", **route),
                                   s.value("http_requests_total", status_code="502", **route)))(
        scrape(server.metrics_url)) == (middle.value("http_requests_total", status_code="200", **route) + 2,
                                        middle.value("http_requests_total", status_code="502", **route) + 1),
               timeout=5, what="the /v1 requests to be counted by route template")


def test_the_documented_example_runs_as_written(server, api_key, fake_llm, tmp_path):
    example = re.search(r"```python\n(.*?)```", OPENAI_DOC.read_text(), re.S).group(1)
    assert 'OpenAI(base_url="http://localhost:4000/v1", api_key=os.environ["GATEWAY_API_KEY"])' in example
    assert MODEL not in example  # the model comes from the reader's catalogue, not ours
    script = tmp_path / "example.py"
    script.write_text(example.replace("http://localhost:4000/v1", f"{server.url}/v1"))

    environ = {key: value for key, value in os.environ.items() if key != "GATEWAY_MODEL"}
    result = subprocess.run([sys.executable, str(script)], env={**environ, "GATEWAY_API_KEY": api_key["key"]},
                            capture_output=True, text=True, timeout=60)

    assert result.returncode == 0, result.stderr
    assert result.stdout == "Hello, world!\n21 tokens\nHello, world!\n21 tokens\n"
    assert [r.body["messages"][-1]["content"] for r in fake_llm.requests] == [
        "Name three prime numbers.", "Write a haiku about the sea."]
