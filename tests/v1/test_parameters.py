"""Every chat-completions parameter is honoured or refused, per provider kind; never silently dropped."""
import json
from pathlib import Path

import pytest

from app import create_app
from tests.support.apps import close_app
from tests.support.auth import AuthActions

from bench.fake_model import Script
from tests.usage.conftest import usage_rows
from tests.v1.conftest import CHAT_MODELS, EMBED_OLLAMA, EMBED_OPENAI, OLLAMA, OPENAI, chunks

HELLO = [{"role": "user", "content": "Hello?"}]
PERSON = {"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}},
          "required": ["name", "age"]}


def test_ollama_gets_each_parameter_it_has_under_its_own_name(v1, fake_llm):
    status, _ = v1("/chat/completions", {
        "model": OLLAMA, "messages": HELLO, "temperature": 0.3, "top_p": 0.8, "max_completion_tokens": 40,
        "stop": ["END"], "seed": 3, "presence_penalty": 0.5, "frequency_penalty": -0.5, "user": "u-1",
        "metadata": {"team": "a"}, "store": False, "logprobs": False, "n": 1, "functions": None})

    assert status == 200
    sent = fake_llm.last_request.body
    assert sent["options"] == {"temperature": 0.3, "top_p": 0.8, "num_predict": 40, "stop": ["END"], "seed": 3,
                               "presence_penalty": 0.5, "frequency_penalty": -0.5}
    # user, metadata and store change nothing Ollama generates: dropped, as documented.
    assert set(sent) == {"model", "messages", "stream", "options"}


def test_openai_compatible_servers_get_every_parameter_unchanged(v1, fake_llm):
    body = {"temperature": 0.3, "top_p": 0.8, "max_tokens": 30, "max_completion_tokens": 40, "stop": "END",
            "seed": 3, "presence_penalty": 0.5, "frequency_penalty": -0.5, "user": "u-1",
            "logit_bias": {"50256": -100}, "logprobs": True, "top_logprobs": 2, "metadata": {"team": "a"},
            "reasoning_effort": "low", "service_tier": "auto"}

    assert v1("/chat/completions", {"model": OPENAI, "messages": HELLO, **body})[0] == 200

    sent = fake_llm.last_request.body
    assert {key: sent[key] for key in body} == {**body, "stop": ["END"]}
    assert sent["model"] == "upstream-gpt"


@pytest.mark.parametrize("body, param", [
    ({"logit_bias": {"50256": -100}}, "logit_bias"),
    ({"logprobs": True}, "logprobs"),
    ({"top_logprobs": 2}, "top_logprobs"),
    ({"reasoning_effort": "low"}, "reasoning_effort"),
    ({"frobnicate": 1}, "frobnicate"),
])
def test_ollama_refuses_what_it_cannot_honour_naming_the_parameter(v1, fake_llm, body, param):
    for stream in (False, True):
        status, answer = v1("/chat/completions", {"model": OLLAMA, "messages": HELLO, "stream": stream, **body})
        assert status == 400 and answer["error"]["param"] == param, answer
        assert param in answer["error"]["message"] or "Ollama" in answer["error"]["message"]
    assert fake_llm.requests == []


def test_logprobs_from_an_openai_compatible_server_reach_the_client(v1, fake_llm):
    status, body = v1("/chat/completions", {"model": OPENAI, "messages": HELLO, "logprobs": True})
    assert status == 200 and body["choices"][0]["logprobs"] is None  # the fake sends none; the field is passed on


@pytest.mark.parametrize("model", CHAT_MODELS)
@pytest.mark.parametrize("response_format, ollama_format", [
    ({"type": "json_object"}, "json"),
    ({"type": "json_schema", "json_schema": {"name": "person", "schema": PERSON, "strict": True}}, PERSON),
    ({"type": "text"}, None),
])
def test_response_format_reaches_the_model(v1, fake_llm, model, response_format, ollama_format):
    # A model in JSON mode answers JSON; in text mode, the same words.
    fake_llm.script = Script(tokens=['{"name": "Ada", "age": 36}'], json_content={"name": "Ada", "age": 36})

    status, body = v1("/chat/completions", {"model": model, "messages": HELLO, "response_format": response_format})

    assert status == 200 and body["choices"][0]["message"]["content"] == '{"name": "Ada", "age": 36}'
    sent = fake_llm.last_request.body
    if model == OPENAI:
        assert sent["response_format"] == response_format
    else:
        assert sent.get("format") == ollama_format and "response_format" not in sent


def test_the_clients_stream_options_are_forwarded_with_include_usage(v1, fake_llm):
    status, _ = v1("/chat/completions", {"model": OPENAI, "messages": HELLO, "stream": True,
                                        "stream_options": {"include_usage": False}})
    assert status == 200 and fake_llm.last_request.body["stream_options"] == {"include_usage": True}


@pytest.mark.parametrize("model", [EMBED_OLLAMA, EMBED_OPENAI])
def test_an_embeddings_model_is_refused_by_the_chat_routes(v1, client, user, fake_llm, model):
    for stream in (False, True):
        status, body = v1("/chat/completions", {"model": model, "messages": HELLO, "stream": stream})
        assert (status, body["error"]["param"], body["error"]["code"]) == (400, "model", "not_a_chat_model")
    response = client.post("/conversations", json={"model": model}, headers=user.headers)
    assert response.status_code == 400 and response.get_json()["error"]["code"] == "not_a_chat_model"
    assert fake_llm.requests == []


def test_one_model_and_an_unknown_one(client, user):
    response = client.get(f"/v1/models/{OPENAI}", headers=user.headers)
    assert response.status_code == 200
    assert response.get_json() == {"id": OPENAI, "object": "model", "created": 0, "owned_by": "openai"}
    response = client.get("/v1/models/nope", headers=user.headers)
    assert response.status_code == 404
    assert response.get_json()["error"] == {"message": "The model `nope` does not exist or you do not have access to it.",
                                            "type": "invalid_request_error", "param": "model", "code": "model_not_found"}
    assert client.get(f"/v1/models/{OPENAI}").status_code == 401


@pytest.mark.parametrize("tokenizer", ["llama.cpp", "vllm"])
def test_a_stream_without_usage_has_its_prompt_counted_by_the_servers_tokenizer(v1, fake_llm, db_session, tokenizer):
    fake_llm.script = Script(tokens=["a", "b", "c"], report_usage=False, tokenizer=tokenizer, tokenizer_count=14)

    status, data = v1("/chat/completions", {"model": OPENAI, "messages": HELLO, "stream": True,
                                            "stream_options": {"include_usage": True}})

    assert status == 200
    assert chunks(data)[-1]["usage"] == {"prompt_tokens": 14, "completion_tokens": 3, "total_tokens": 17}
    [row] = usage_rows(db_session)
    assert (row.prompt_tokens, row.completion_tokens, row.estimated, row.method) == (14, 3, False, "tokenizer")
    # llama.cpp's template, then its tokens; vLLM has no /apply-template (a 404) and counts the messages itself.
    assert [(path, body.get("messages")) for path, body in fake_llm.tokenize_requests] == [
        ("/apply-template", HELLO), ("/tokenize", None if tokenizer == "llama.cpp" else HELLO)]


def test_a_server_that_cannot_count_is_asked_once_then_estimated(v1, fake_llm, db_session):
    fake_llm.script = Script(tokens=["a", "b", "c"], report_usage=False)

    for _ in range(2):
        assert v1("/chat/completions", {"model": OPENAI, "messages": HELLO, "stream": True})[0] == 200

    rows = usage_rows(db_session)
    assert [(r.completion_tokens, r.estimated, r.method) for r in rows] == [(3, True, "chunks")] * 2
    assert [path for path, _ in fake_llm.tokenize_requests] == ["/apply-template", "/tokenize"]


def test_a_server_seen_reporting_stream_usage_is_not_asked_to_count(v1, fake_llm):
    fake_llm.script = Script(tokenizer="llama.cpp")
    for _ in range(2):
        assert v1("/chat/completions", {"model": OPENAI, "messages": HELLO, "stream": True})[0] == 200
    assert len(fake_llm.tokenize_requests) <= 2  # the first stream's count at most, never the second's


def test_the_catalogue_switch_turns_counting_off(app_config, fake_llm, tmp_path):
    models = json.loads(Path(app_config["MODELS_FILE"]).read_text())
    models["models"][OPENAI]["count_prompt_tokens"] = False
    path = tmp_path / "off.json"
    path.write_text(json.dumps(models))
    app = create_app({**app_config, "MODELS_FILE": str(path)})
    try:
        client = app.test_client()
        user = AuthActions(client).register()
        fake_llm.script = Script(tokens=["a", "b"], report_usage=False, tokenizer="llama.cpp")
        response = client.post("/v1/chat/completions", headers=user.headers,
                               json={"model": OPENAI, "messages": HELLO, "stream": True})
        assert response.status_code == 200 and b"[DONE]" in response.get_data()
        assert fake_llm.tokenize_requests == []
    finally:
        close_app(app)


@pytest.fixture
def limited(app_config, tmp_path):
    """A client of an app whose two chat models set `default_max_tokens`, and a user of it."""
    models = json.loads(Path(app_config["MODELS_FILE"]).read_text())
    for name in CHAT_MODELS:
        models["models"][name]["default_max_tokens"] = 64
    path = tmp_path / "limited.json"
    path.write_text(json.dumps(models))
    app = create_app({**app_config, "MODELS_FILE": str(path)})
    client = app.test_client()
    yield client, AuthActions(client).register()
    close_app(app)


def sent_limits(fake_llm) -> dict:
    """The reply's token limits the last upstream request carried, in its protocol's own terms."""
    body = fake_llm.last_request.body
    if fake_llm.last_request.protocol == "ollama":
        return {"num_predict": body.get("options", {}).get("num_predict")}
    return {key: body[key] for key in ("max_tokens", "max_completion_tokens") if key in body}


@pytest.mark.parametrize("model, default", [(OLLAMA, {"num_predict": 64}), (OPENAI, {"max_tokens": 64})])
def test_a_models_default_max_tokens_is_sent_when_the_request_names_no_limit(limited, fake_llm, model, default):
    client, user = limited
    conversation = client.post("/conversations", json={"model": model}, headers=user.headers).get_json()["id"]

    for stream in (False, True):
        response = client.post("/v1/chat/completions", headers=user.headers,
                               json={"model": model, "messages": HELLO, "stream": stream})
        assert response.status_code == 200 and sent_limits(fake_llm) == default
        route = "stream" if stream else "messages"
        response = client.post(f"/conversations/{conversation}/{route}", json={"content": "Hi"}, headers=user.headers)
        assert response.status_code == 200 and sent_limits(fake_llm) == default

    # A request's own limit wins, whichever of OpenAI's two names it uses.
    response = client.post("/v1/chat/completions", headers=user.headers,
                           json={"model": model, "messages": HELLO, "max_tokens": 10})
    assert response.status_code == 200 and sent_limits(fake_llm) == {next(iter(default)): 10}
    response = client.post("/v1/chat/completions", headers=user.headers,
                           json={"model": model, "messages": HELLO, "max_completion_tokens": 12})
    assert response.status_code == 200
    assert sent_limits(fake_llm) == ({"num_predict": 12} if model == OLLAMA else {"max_completion_tokens": 12})
    response = client.post(f"/conversations/{conversation}/messages", json={"content": "Hi", "maxTokens": 8},
                           headers=user.headers)
    assert response.status_code == 200 and sent_limits(fake_llm) == {next(iter(default)): 8}


def test_without_default_max_tokens_no_limit_is_sent(v1, fake_llm):
    for model in CHAT_MODELS:
        assert v1("/chat/completions", {"model": model, "messages": HELLO})[0] == 200
        assert not any(sent_limits(fake_llm).values())
