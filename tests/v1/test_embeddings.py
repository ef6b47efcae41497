"""POST /v1/embeddings: both provider kinds, every input form, both encodings, usage rows and metrics."""
import base64
import struct
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY

from bench.fake_model import Script
from bench.fake_model.embeddings import vector
from tests.usage.conftest import usage_rows
from tests.v1.conftest import EMBED_OLLAMA, EMBED_OPENAI, OLLAMA

EMBED_MODELS = [EMBED_OLLAMA, EMBED_OPENAI]


def metric(name: str, **labels) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.mark.parametrize("model", EMBED_MODELS)
def test_a_list_is_embedded_in_order_with_usage_row_and_metrics(v1, fake_llm, db_session, model):
    before = {name: metric(name, model=model) for name in ("embedding_tokens_total", "embedding_inputs_total")}
    before_ok = metric("embedding_requests_total", model=model, outcome="success")

    status, body = v1("/embeddings", {"model": model, "input": ["one two", "three"], "dimensions": 3})

    assert status == 200, body
    assert body["object"] == "list" and body["model"] == model
    assert [(item["object"], item["index"], item["embedding"]) for item in body["data"]] == [
        ("embedding", 0, vector("one two", 3)), ("embedding", 1, vector("three", 3))]
    assert body["usage"] == {"prompt_tokens": 3, "total_tokens": 3}  # the fake counts a token a word
    request = fake_llm.last_request
    if model == EMBED_OLLAMA:
        assert request.path == "/api/embed"
        assert request.body == {"model": "nomic-embed-text", "input": ["one two", "three"], "dimensions": 3}
    else:
        assert request.path == "/v1/embeddings"
        assert request.body == {"model": "text-embedding-3-small", "input": ["one two", "three"],
                                "encoding_format": "float", "dimensions": 3}
    [row] = usage_rows(db_session)
    assert (row.model, row.prompt_tokens, row.completion_tokens, row.method, row.outcome) == (
        model, 3, 0, "reported", "success")
    assert row.cost_usd == (Decimal("0.00000006") if model == EMBED_OPENAI else None)
    assert metric("embedding_tokens_total", model=model) - before["embedding_tokens_total"] == 3
    assert metric("embedding_inputs_total", model=model) - before["embedding_inputs_total"] == 2
    assert metric("embedding_requests_total", model=model, outcome="success") - before_ok == 1


@pytest.mark.parametrize("model", EMBED_MODELS)
def test_base64_is_little_endian_float32(v1, fake_llm, model):
    status, body = v1("/embeddings", {"model": model, "input": "hello", "encoding_format": "base64"})
    assert status == 200
    raw = base64.b64decode(body["data"][0]["embedding"])
    assert list(struct.unpack(f"<{len(raw) // 4}f", raw)) == vector("hello", 16)


def test_token_arrays_go_to_openai_compatible_servers_and_ollama_refuses_them(v1, fake_llm, db_session):
    fake_llm.script = Script(report_usage=False)
    status, body = v1("/embeddings", {"model": EMBED_OPENAI, "input": [[1, 2, 3], [4, 5]]})
    assert status == 200 and len(body["data"]) == 2
    assert fake_llm.last_request.body["input"] == [[1, 2, 3], [4, 5]]
    assert body["usage"]["prompt_tokens"] == 5  # counted exactly: the tokens are given
    assert v1("/embeddings", {"model": EMBED_OPENAI, "input": [7, 8]})[1]["usage"]["prompt_tokens"] == 2

    status, body = v1("/embeddings", {"model": EMBED_OLLAMA, "input": [1, 2, 3]})
    assert (status, body["error"]["param"]) == (400, "input")
    assert [r.method for r in usage_rows(db_session)] == ["tokenizer", "tokenizer"]


def test_without_reported_usage_text_is_estimated(v1, fake_llm, db_session):
    fake_llm.script = Script(report_usage=False)
    status, body = v1("/embeddings", {"model": EMBED_OLLAMA, "input": "12345678"})
    assert status == 200 and body["usage"]["prompt_tokens"] == 2
    [row] = usage_rows(db_session)
    assert (row.estimated, row.method) == (True, "characters")


def test_a_chat_model_may_be_asked_for_embeddings(v1, fake_llm):
    assert v1("/embeddings", {"model": OLLAMA, "input": "hi"})[0] == 200
    assert fake_llm.last_request.body["model"] == OLLAMA


def test_a_provider_failure_is_a_502_with_its_row(v1, fake_llm, db_session):
    fake_llm.script = Script(status=500)
    before = metric("embedding_requests_total", model=EMBED_OPENAI, outcome="provider_error")
    status, body = v1("/embeddings", {"model": EMBED_OPENAI, "input": "hi"})
    assert (status, body["error"]["type"], body["error"]["code"]) == (502, "server_error", "provider_error")
    [row] = usage_rows(db_session)
    assert (row.outcome, row.prompt_tokens) == ("provider_error", 0)
    assert metric("embedding_requests_total", model=EMBED_OPENAI, outcome="provider_error") == before + 1


@pytest.mark.parametrize("body, param", [
    ({"model": "nope", "input": "x"}, "model"),
    ({"model": EMBED_OPENAI, "input": []}, "input"),
    ({"model": EMBED_OPENAI, "input": [1, "a"]}, "input"),
    ({"model": EMBED_OPENAI, "input": [[]]}, "input"),
    ({"model": EMBED_OPENAI, "input": "x", "encoding_format": "int8"}, "encoding_format"),
    ({"model": EMBED_OPENAI, "input": "x", "dimensions": 0}, "dimensions"),
])
def test_bad_requests_name_the_parameter(v1, fake_llm, body, param):
    status, answer = v1("/embeddings", body)
    assert status in (400, 404) and answer["error"]["param"] == param
    assert fake_llm.requests == []


def test_embeddings_need_a_caller(client):
    assert client.post("/v1/embeddings", json={"model": EMBED_OPENAI, "input": "x"}).status_code == 401
