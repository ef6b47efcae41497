"""Spans in process, through the test client: names, kinds, parents and attributes, and what the upstream saw.

tests/tracing/test_tracing_gunicorn.py proves the same trees across real gunicorn workers;
here each attribute is checked where it is cheap.
"""
import json

import pytest

from app import tracing
from app.tracing.genai import CONTENT_LIMIT
from bench.fake_model import Script
from tests.support.otlp import by_name
from tests.tracing.conftest import EMBED, OLLAMA, OPENAI

CALLER_TRACE, CALLER_SPAN = "4bf92f3577b34da6a3ce929d0e0e4736", "00f067aa0ba902b7"


def sampled(header: str) -> bool:
    """The sampled bit of a traceparent or traceresponse (the SDK also sets level 2's random-trace-id bit)."""
    return bool(int(header.rsplit("-", 1)[1], 16) & 1)


def exported(otlp, response):
    """The spans of the trace `response` names, once the response is closed and this process has exported them."""
    response.close()  # a streamed body's span ends when the server closes it, as gunicorn does
    tracing.flush()
    return otlp.trace(response.headers["traceresponse"].split("-")[1])


def chat(client, user, conversation, path="messages", **body):
    return client.post(f"/conversations/{conversation['id']}/{path}", json={"content": "Hi", **body},
                       headers=user.headers)


def test_a_whole_chat_is_a_server_span_over_a_genai_client_span(client, user, conversation, fake_llm, otlp):
    fake_llm.script = Script(tokens=["Bonjour", " !"], prompt_tokens=21, completion_tokens=3)
    response = chat(client, user, conversation, temperature=0.5, topP=0.9)
    assert response.status_code == 200, response.get_json()
    spans = exported(otlp, response)

    server = by_name(spans, "POST /conversations/<id>/messages")
    assert server.kind == "SERVER" and server.parent_id == "" and server.status == "UNSET"
    assert response.headers["traceresponse"].startswith(f"00-{server.trace_id}-{server.span_id}-")
    assert sampled(response.headers["traceresponse"])
    assert server.attributes["http.request.method"] == "POST"
    assert server.attributes["http.route"] == "/conversations/<id>/messages"
    assert server.attributes["url.path"] == f"/conversations/{conversation['id']}/messages"
    assert server.attributes["http.response.status_code"] == 200
    assert server.attributes["http.response.header.x-request-id"] == [response.headers["X-Request-ID"]]
    assert server.attributes["gateway.chat.outcome"] == "success"
    assert server.resource["service.name"] == "ai-chat-gateway"

    client_span = by_name(spans, f"chat {OLLAMA}")
    assert client_span.kind == "CLIENT" and client_span.parent_id == server.span_id
    attributes = client_span.attributes
    assert {key: attributes[key] for key in ("gen_ai.operation.name", "gen_ai.provider.name", "gen_ai.request.model",
                                             "gen_ai.response.model")} == {
        "gen_ai.operation.name": "chat", "gen_ai.provider.name": "ollama", "gen_ai.request.model": OLLAMA,
        "gen_ai.response.model": OLLAMA}
    assert attributes["gen_ai.request.temperature"] == 0.5 and attributes["gen_ai.request.top_p"] == 0.9
    assert attributes["gen_ai.usage.input_tokens"] == 21 and attributes["gen_ai.usage.output_tokens"] == 3
    assert attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert attributes["server.address"] == "127.0.0.1" and attributes["server.port"] == fake_llm.port
    assert "gen_ai.input.messages" not in attributes and "gen_ai.output.messages" not in attributes
    # The model server was told which span called it.
    traceparent = fake_llm.last_request.headers["traceparent"]
    assert traceparent.startswith(f"00-{server.trace_id}-{client_span.span_id}-") and sampled(traceparent)

    statements = [span for span in spans if span.attributes.get("db.system")]
    assert statements and all(span.kind == "CLIENT" and span.parent_id == server.span_id for span in statements)
    # `in`, not startswith: on PostgreSQL the turn's writes go as one multi-statement query (db.run_as_one).
    assert any("INSERT INTO usage_records" in span.attributes["db.statement"] for span in statements)


def test_a_stream_span_ends_at_its_last_byte_with_the_first_chunk_and_usage(client, user, conversation, fake_llm, otlp):
    fake_llm.script = Script(tokens=["a", "b", "c"], token_delay=0.02, prompt_tokens=5, completion_tokens=3)
    response = chat(client, user, conversation, path="stream")
    assert response.status_code == 200 and b'"type": "end"' in response.get_data()
    spans = exported(otlp, response)

    server = by_name(spans, "POST /conversations/<id>/stream")
    client_span = by_name(spans, f"chat {OLLAMA}")
    assert client_span.parent_id == server.span_id and client_span.events == ["gen_ai.first_chunk"]
    assert client_span.attributes["gateway.gen_ai.time_to_first_chunk"] > 0
    assert client_span.attributes["gen_ai.usage.output_tokens"] == 3
    assert client_span.attributes["gen_ai.response.finish_reasons"] == ["stop"]
    assert server.end_ns >= client_span.end_ns
    # The reply and its usage row were stored after the response started, inside the request's span.
    inserts = [span for span in spans if "INSERT INTO messages" in span.attributes.get("db.statement", "")]
    assert inserts and inserts[-1].parent_id == server.span_id and server.end_ns >= inserts[-1].end_ns
    assert server.attributes["gateway.chat.outcome"] == "success" and server.status == "UNSET"


def test_a_stream_that_breaks_fails_both_spans_though_its_status_was_200(client, user, conversation, fake_llm, otlp):
    fake_llm.script = Script(tokens=["a", "b", "c", "d"], fail_after=2)
    response = chat(client, user, conversation, path="stream")
    assert response.status_code == 200 and b'"type": "error"' in response.get_data()
    spans = exported(otlp, response)

    server = by_name(spans, "POST /conversations/<id>/stream")
    client_span = by_name(spans, f"chat {OLLAMA}")
    assert client_span.status == "ERROR" and client_span.attributes["error.type"] == "ProviderError"
    assert server.status == "ERROR" and server.attributes["error.type"] == "provider_error"


def test_a_failing_upstream_is_an_error_client_span_under_a_502(client, user, conversation, fake_llm, otlp):
    fake_llm.script = Script(status=500)
    response = chat(client, user, conversation)
    assert response.status_code == 502
    spans = exported(otlp, response)

    server = by_name(spans, "POST /conversations/<id>/messages")
    client_span = by_name(spans, f"chat {OLLAMA}")
    assert client_span.parent_id == server.span_id
    assert client_span.status == "ERROR" and client_span.attributes["error.type"] == "ProviderError"
    assert server.status == "ERROR" and server.attributes["error.type"] == "502"
    assert server.attributes["http.response.status_code"] == 502


def test_v1_chat_records_the_parameters_sent_and_the_upstream_model(client, user, fake_llm, otlp):
    response = client.post("/v1/chat/completions", headers=user.headers, json={
        "model": OPENAI, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 50, "seed": 7,
        "stop": ["\n\n"], "presence_penalty": 0.5, "frequency_penalty": 0.25,
        "response_format": {"type": "json_object"}})
    assert response.status_code == 200, response.get_json()
    spans = exported(otlp, response)

    server = by_name(spans, "POST /v1/chat/completions")
    client_span = by_name(spans, "chat upstream-gpt")
    assert client_span.parent_id == server.span_id
    attributes = client_span.attributes
    assert attributes["gen_ai.provider.name"] == "openai" and attributes["gen_ai.request.model"] == "upstream-gpt"
    assert attributes["gen_ai.request.max_tokens"] == 50 and attributes["gen_ai.request.seed"] == 7
    assert attributes["gen_ai.request.stop_sequences"] == ["\n\n"]
    assert attributes["gen_ai.request.presence_penalty"] == 0.5
    assert attributes["gen_ai.request.frequency_penalty"] == 0.25
    assert attributes["gen_ai.output.type"] == "json"


def test_embeddings_get_embeddings_spans(client, user, fake_llm, otlp):
    response = client.post("/v1/embeddings", headers=user.headers,
                           json={"model": EMBED, "input": ["one", "two"], "dimensions": 8})
    assert response.status_code == 200, response.get_json()
    spans = exported(otlp, response)

    client_span = by_name(spans, "embeddings text-embedding-3-small")
    assert client_span.kind == "CLIENT" and client_span.attributes["gen_ai.operation.name"] == "embeddings"
    assert client_span.attributes["gen_ai.embeddings.dimension.count"] == 8
    assert client_span.parent_id == by_name(spans, "POST /v1/embeddings").span_id


@pytest.mark.parametrize("app_overrides", [{"OTEL_INSTRUMENTATION_GENAI_CAPTURE_MESSAGE_CONTENT": "true"}])
def test_content_is_captured_only_when_asked_and_bounded(client, user, conversation, fake_llm, otlp):
    fake_llm.script = Script(tokens=["Bonjour", " !"])
    spans = exported(otlp, chat(client, user, conversation, content="Say hello"))
    attributes = by_name(spans, f"chat {OLLAMA}").attributes
    assert json.loads(attributes["gen_ai.input.messages"])[-1] == {"role": "user", "content": "Say hello"}
    assert attributes["gen_ai.output.messages"] == "Bonjour !"

    fake_llm.script = Script(tokens=["x" * 1000] * 40)
    response = chat(client, user, conversation, path="stream", content="y" * 30_000)
    assert b'"type": "end"' in response.get_data()  # read to the end: the call's span ends with the stream
    spans = exported(otlp, response)
    attributes = by_name(spans, f"chat {OLLAMA}").attributes
    assert len(attributes["gen_ai.input.messages"]) <= CONTENT_LIMIT + 20
    assert len(attributes["gen_ai.output.messages"]) <= CONTENT_LIMIT + 20


def test_an_incoming_traceparent_makes_the_request_part_of_the_callers_trace(client, user, conversation, fake_llm,
                                                                            otlp):
    headers = {**user.headers, "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01", "tracestate": "vendor=1"}
    response = client.post(f"/conversations/{conversation['id']}/messages", json={"content": "Hi"}, headers=headers)
    assert response.headers["traceresponse"].startswith(f"00-{CALLER_TRACE}-")
    spans = exported(otlp, response)
    server = by_name(spans, "POST /conversations/<id>/messages")
    assert server.parent_id == CALLER_SPAN
    assert fake_llm.last_request.headers["traceparent"].startswith(f"00-{CALLER_TRACE}-")
    assert fake_llm.last_request.headers["tracestate"] == "vendor=1"


@pytest.mark.parametrize("app_overrides", [{"OTEL_TRACES_SAMPLER": "parentbased_traceidratio",
                                            "OTEL_TRACES_SAMPLER_ARG": "0"}])
def test_sampling_at_zero_exports_nothing(client, user, conversation, fake_llm, otlp):
    response = chat(client, user, conversation)
    assert response.status_code == 200
    assert exported(otlp, response) == [] and otlp.spans == []
    # Not sampled, and the model server is told so.
    assert not sampled(response.headers["traceresponse"])
    assert not sampled(fake_llm.last_request.headers["traceparent"])


@pytest.mark.parametrize("app_overrides", [{"OTEL_EXPORTER_OTLP_ENDPOINT": ""}])
def test_without_an_endpoint_nothing_is_installed(app, client, user, conversation, fake_llm, otlp):
    response = chat(client, user, conversation)
    assert response.status_code == 200
    assert "traceresponse" not in response.headers and "traceparent" not in fake_llm.last_request.headers
    assert not tracing.export.enabled()
    layers, wsgi = [], app.wsgi_app
    while wsgi is not None:
        layers.append(type(wsgi).__name__)
        wsgi = getattr(wsgi, "wsgi_app", getattr(wsgi, "app", None))
    assert "TracingMiddleware" not in layers
