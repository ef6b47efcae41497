"""The gateway's own share of a chat: the X-Gateway-Overhead-Ms header, the stored meta, and the histogram.

The fake provider is made slow on purpose: none of its waiting may show up in the figure.
"""
import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from app.models import Message, MessageRole
from tests.chat.conftest import OLLAMA_MODEL
from bench.fake_model import Script
from tests.support.sse import parse_sse

PROVIDER_DELAY = 0.3  # seconds the provider takes; none of it may be counted as the gateway's


def overhead_histogram(streaming: str) -> tuple[float, float]:
    labels = {"model": OLLAMA_MODEL, "streaming": streaming}
    return (REGISTRY.get_sample_value("chat_gateway_overhead_seconds_count", labels) or 0.0,
            REGISTRY.get_sample_value("chat_gateway_overhead_seconds_sum", labels) or 0.0)


def timed(send):
    """The response, read to its end, and the milliseconds that took: the provider's wait plus the gateway's.

    The gateway's figure must leave the provider's wait out: it is at most the whole time less that wait,
    however slow the machine (a fixed bound failed when a loaded database stalled a commit).
    """
    started = time.monotonic()
    response = send()
    response.get_data()
    return response, (time.monotonic() - started) * 1000


def assistant_meta(db_session, conversation_id) -> dict:
    db_session.expire_all()
    return db_session.scalars(select(Message.meta).where(
        Message.conversation_id == conversation_id, Message.role == MessageRole.ASSISTANT)).one()


def test_whole_reply_reports_its_overhead_without_the_provider_wait(client, user, conversation, fake_llm, db_session):
    fake_llm.script = Script(tokens=["Hello"], headers_delay=PROVIDER_DELAY)
    count, total = overhead_histogram("false")

    response, elapsed_ms = timed(lambda: client.post(f"/conversations/{conversation['id']}/messages",
                                                     json={"content": "Hi"}, headers=user.headers))

    assert response.status_code == 200
    header_ms = float(response.headers["X-Gateway-Overhead-Ms"])
    assert 0 < header_ms <= elapsed_ms - PROVIDER_DELAY * 1000
    stored_ms = assistant_meta(db_session, conversation["id"])["timings"]["gatewayOverheadMs"]
    # The stored figure stops where the message is written; the header's goes on to the response.
    assert 0 < stored_ms <= header_ms
    new_count, new_total = overhead_histogram("false")
    assert new_count == count + 1
    assert new_total - total == pytest.approx(header_ms / 1000, abs=0.0001)


def test_stream_reports_its_overhead_without_the_provider_wait(client, user, conversation, fake_llm, db_session):
    fake_llm.script = Script(tokens=["a", "b", "c"], first_token_delay=PROVIDER_DELAY, token_delay=0.05)
    count, total = overhead_histogram("true")

    response, elapsed_ms = timed(lambda: client.post(f"/conversations/{conversation['id']}/stream",
                                                     json={"content": "Hi"}, headers=user.headers))
    without_provider_ms = elapsed_ms - PROVIDER_DELAY * 1000

    assert response.status_code == 200
    assert [e["type"] for e in parse_sse(response.data)] == ["token", "token", "token", "end"]
    before_upstream_ms = float(response.headers["X-Gateway-Overhead-Ms"])
    assert 0 < before_upstream_ms <= without_provider_ms
    stored_ms = assistant_meta(db_session, conversation["id"])["timings"]["gatewayOverheadMs"]
    assert before_upstream_ms <= stored_ms <= without_provider_ms
    new_count, new_total = overhead_histogram("true")
    assert new_count == count + 1
    assert stored_ms / 1000 <= new_total - total <= without_provider_ms / 1000


@pytest.mark.parametrize("stream", [False, True])
def test_openai_route_reports_its_overhead(client, user, fake_llm, stream):
    fake_llm.script = Script(tokens=["Hi"], headers_delay=PROVIDER_DELAY)
    count, _ = overhead_histogram("true" if stream else "false")

    response, elapsed_ms = timed(lambda: client.post("/v1/chat/completions", headers=user.headers, json={
        "model": OLLAMA_MODEL, "messages": [{"role": "user", "content": "Hi"}], "stream": stream}))

    assert response.status_code == 200
    assert 0 < float(response.headers["X-Gateway-Overhead-Ms"]) <= elapsed_ms - PROVIDER_DELAY * 1000
    response.close()
    assert overhead_histogram("true" if stream else "false")[0] == count + 1


def test_no_overhead_header_outside_chats(client, user):
    assert "X-Gateway-Overhead-Ms" not in client.get("/conversations", headers=user.headers).headers


@pytest.mark.parametrize("app_overrides", [{"METRICS_ENABLED": "false"}])
def test_metrics_disabled_turns_off_only_the_instrumentation(client, user, conversation, fake_llm, db_session):
    fake_llm.script = Script(tokens=["Hello"])
    labels = {"model": OLLAMA_MODEL, "streaming": "false", "outcome": "success"}
    completions = REGISTRY.get_sample_value("chat_completions_total", labels) or 0.0
    requests = REGISTRY.get_sample_value(
        "http_requests_total", {"method": "GET", "route": "/conversations", "status_code": "200"}) or 0.0
    count, _ = overhead_histogram("false")

    response = client.post(f"/conversations/{conversation['id']}/messages", json={"content": "Hi"},
                           headers=user.headers)
    assert client.get("/conversations", headers=user.headers).status_code == 200

    assert response.status_code == 200 and response.get_json()["assistantMessage"]["content"] == "Hello"
    assert float(response.headers["X-Gateway-Overhead-Ms"]) > 0
    assert assistant_meta(db_session, conversation["id"])["timings"]["gatewayOverheadMs"] > 0
    assert (REGISTRY.get_sample_value("chat_completions_total", labels) or 0.0) == completions
    assert (REGISTRY.get_sample_value(
        "http_requests_total", {"method": "GET", "route": "/conversations", "status_code": "200"}) or 0.0) == requests
    assert overhead_histogram("false")[0] == count
    scrape = client.get("/metrics")
    assert scrape.status_code == 404 and scrape.get_json()["error"]["code"] == "not_found"
