"""Real gunicorn, 2 gevent workers, both databases: span trees exported by every worker, joined to the JSON logs."""
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from bench.fake_model import Script
from tests.support.gateway import gateway, logged_in
from tests.support.metrics import scrape
from tests.support.servers import wait_until
from tests.support.otlp import by_name, trace_id_of
from tests.tracing.conftest import OLLAMA, OPENAI, models_file

pytestmark = pytest.mark.slow

CALLER_TRACE, CALLER_SPAN = "0af7651916cd43dd8448eb211c80319c", "b7ad6b7169203331"
TWIN = "twin"  # a model of two upstreams (both the fake), so a failed first attempt fails over to the other


def with_twin(path: str, fake_llm) -> str:
    catalogue = json.loads(Path(path).read_text())
    catalogue["models"][TWIN] = {"provider": "ollama", "upstreams": [
        {"name": "a", "base_url": fake_llm.ollama_url}, {"name": "b", "base_url": fake_llm.ollama_url}]}
    Path(path).write_text(json.dumps(catalogue))
    return path


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_database_url, _fake_llm_server, _otlp_receiver):
    directory = tmp_path_factory.mktemp("traced-gateway")
    env = {"MODELS_FILE": with_twin(models_file(directory, _fake_llm_server), _fake_llm_server),
           "LOG_FORMAT": "json", "LOG_LEVEL": "INFO",
           "OTEL_EXPORTER_OTLP_ENDPOINT": _otlp_receiver.endpoint, "OTEL_BSP_SCHEDULE_DELAY": "100",
           "OTEL_EXPORTER_OTLP_TRACES_TIMEOUT": "1",
           "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment.name=test"}
    with gateway(directory, _fake_llm_server, database_url=module_database_url, workers=2, env=env) as server:
        server.wait_for_workers(2)
        yield server


@pytest.fixture(scope="module")
def owner(server):
    return logged_in(server)


def log_lines(server, request_id: str) -> list[dict]:
    lines = [json.loads(line) for line in server.log().splitlines() if line.startswith("{")]
    return [line for line in lines if line.get("requestId") == request_id]


def check_trace(server, otlp, fake_llm, response, *, server_name: str, client_name: str, count: int) -> dict:
    """The SERVER span over `count` CLIENT attempts, what the model server saw, and the request's log lines."""
    trace_id = trace_id_of(response.headers)
    spans = otlp.wait_for_trace(trace_id, count=1, where=lambda span: span.kind == "SERVER")
    spans = otlp.wait_for_trace(trace_id, count=count, where=lambda span: span.name == client_name)
    root = by_name(spans, server_name)
    assert root.kind == "SERVER" and root.parent_id == ""
    assert root.resource["service.name"] == "ai-chat-gateway"
    assert root.resource["deployment.environment.name"] == "test"
    assert root.attributes["http.response.header.x-request-id"] == [response.headers["X-Request-ID"]]
    attempts = [span for span in spans if span.name == client_name]
    assert all(span.kind == "CLIENT" and span.parent_id == root.span_id for span in attempts)
    seen = {request.headers.get("traceparent", "").split("-")[2] for request in fake_llm.requests
            if request.headers.get("traceparent", "").split("-")[1:2] == [trace_id]}
    assert seen == {span.span_id for span in attempts}  # each attempt's request named its own span

    lines = log_lines(server, response.headers["X-Request-ID"])
    span_ids = {span.span_id for span in spans}
    assert lines and all(line["trace_id"] == trace_id and line["span_id"] in span_ids for line in lines), lines
    return {"root": root, "attempts": attempts, "lines": lines}


def test_a_whole_chat(server, owner, fake_llm, otlp):
    conversation = owner.conversation()
    response = requests.post(f"{server.url}/conversations/{conversation}/messages", json={"content": "Hi"},
                             headers=owner.headers, timeout=30)
    assert response.status_code == 200
    tree = check_trace(server, otlp, fake_llm, response, server_name="POST /conversations/<id>/messages",
                       client_name=f"chat {OLLAMA}", count=1)
    assert tree["attempts"][0].attributes["gen_ai.usage.input_tokens"] > 0
    assert {line["message"] for line in tree["lines"]} >= {"request"}  # gunicorn's access line, too


def test_a_streamed_chat_with_its_usage_recorded_after_the_response(server, owner, fake_llm, otlp):
    fake_llm.script = Script(tokens=["a", "b", "c"], token_delay=0.02)
    conversation = owner.conversation()
    with requests.post(f"{server.url}/conversations/{conversation}/stream", json={"content": "Hi"},
                       headers=owner.headers, stream=True, timeout=30) as response:
        body = response.content
    assert b'"type": "end"' in body
    tree = check_trace(server, otlp, fake_llm, response, server_name="POST /conversations/<id>/stream",
                       client_name=f"chat {OLLAMA}", count=1)
    assert tree["attempts"][0].events == ["gen_ai.first_chunk"]
    assert tree["root"].end_ns >= tree["attempts"][0].end_ns
    settled = [line for line in tree["lines"] if line["message"].startswith("chat completion")]
    assert settled and settled[0]["span_id"] == tree["root"].span_id


def test_v1_chats_whole_and_streamed(server, owner, fake_llm, otlp):
    for stream in (False, True):
        response = requests.post(f"{server.url}/v1/chat/completions", headers=owner.headers, timeout=30, json={
            "model": OPENAI, "stream": stream, "temperature": 0.2, "messages": [{"role": "user", "content": "Hi"}]})
        assert response.status_code == 200
        tree = check_trace(server, otlp, fake_llm, response, server_name="POST /v1/chat/completions",
                           client_name="chat upstream-gpt", count=1)
        assert tree["attempts"][0].attributes["gen_ai.request.temperature"] == 0.2
        assert tree["attempts"][0].attributes["gen_ai.provider.name"] == "openai"


def test_a_failing_upstream(server, owner, fake_llm, otlp):
    fake_llm.script = Script(status=500)
    response = requests.post(f"{server.url}/v1/chat/completions", headers=owner.headers, timeout=30,
                             json={"model": OLLAMA, "messages": [{"role": "user", "content": "Hi"}]})
    assert response.status_code == 502
    tree = check_trace(server, otlp, fake_llm, response, server_name="POST /v1/chat/completions",
                       client_name=f"chat {OLLAMA}", count=1)
    assert tree["root"].status == "ERROR" and tree["attempts"][0].status == "ERROR"
    assert tree["attempts"][0].attributes["error.type"] == "ProviderError"
    failure = [line for line in tree["lines"] if "answered 500" in line["message"]]
    assert failure and failure[0]["span_id"] == tree["attempts"][0].span_id


def test_each_failover_attempt_is_a_span_of_its_own(server, owner, fake_llm, otlp):
    fake_llm.queue(Script(status=503))  # the first attempt, whichever upstream it goes to; the second answers
    response = requests.post(f"{server.url}/v1/chat/completions", headers=owner.headers, timeout=30,
                             json={"model": TWIN, "messages": [{"role": "user", "content": "Hi"}]})
    assert response.status_code == 200
    tree = check_trace(server, otlp, fake_llm, response, server_name="POST /v1/chat/completions",
                       client_name=f"chat {TWIN}", count=2)
    failed, answered = sorted(tree["attempts"], key=lambda span: span.start_ns)
    assert failed.status == "ERROR" and failed.attributes["error.type"] == "ProviderError"
    assert answered.status != "ERROR" and answered.start_ns >= failed.end_ns
    assert answered.attributes["gen_ai.usage.output_tokens"] > 0
    assert tree["root"].status != "ERROR"  # the client got its reply


def test_an_incoming_traceparent_is_honoured(server, owner, fake_llm, otlp):
    response = requests.get(f"{server.url}/conversations", timeout=30,
                            headers={**owner.headers, "traceparent": f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"})
    assert response.status_code == 200 and trace_id_of(response.headers) == CALLER_TRACE
    spans = otlp.wait_for_trace(CALLER_TRACE, where=lambda span: span.kind == "SERVER")
    root = by_name(spans, "GET /conversations")
    assert root.parent_id == CALLER_SPAN
    assert any(span.attributes.get("db.system") and span.parent_id == root.span_id for span in spans)


def test_a_refusing_collector_leaves_requests_alone_and_counts_the_drops(server, owner, fake_llm, otlp):
    dropped_before = scrape(server.metrics_url).total("gateway_trace_spans_dropped_total")
    said_before = server.log().count("spans dropped")
    otlp.refuse = True
    try:
        def chat(_):
            return requests.post(f"{server.url}/v1/chat/completions", headers=owner.headers, timeout=30,
                                 json={"model": OLLAMA, "messages": [{"role": "user", "content": "Hi"}]}).status_code

        with ThreadPoolExecutor(8) as pool:
            assert list(pool.map(chat, range(16))) == [200] * 16
        wait_until(lambda: scrape(server.metrics_url).total("gateway_trace_spans_dropped_total",
                                                            reason="export_failed") >= dropped_before + 16 * 2,
                   what="the spans of 16 chats counted as dropped")
        assert 1 <= server.log().count("spans dropped") - said_before <= 2  # once per worker at most
    finally:
        otlp.refuse = False
