"""POST /conversations/<id>/stream: SSE events, stored rows, heartbeats, and a client leaving early."""
import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from app.models import Conversation, Message, MessageRole
from tests.chat.conftest import OLLAMA_MODEL, OPENAI_MODEL
from tests.support.sse import parse_sse as sse_events
from bench.fake_model import Script


def stream(client, user, conversation_id, **body):
    body.setdefault("content", "Hi there")
    return client.post(f"/conversations/{conversation_id}/stream", json=body, headers=user.headers)


def assistant_rows(db_session, conversation_id):
    db_session.expire_all()
    return list(db_session.scalars(select(Message).where(
        Message.conversation_id == conversation_id, Message.role == MessageRole.ASSISTANT)))


@pytest.mark.parametrize("model, provider", [(OLLAMA_MODEL, "ollama"), (OPENAI_MODEL, "openai")])
def test_streamed_reply_through_each_provider(client, user, conversation, fake_llm, db_session, model, provider):
    fake_llm.script = Script(tokens=["Bon", "jour", " !"], prompt_tokens=12, completion_tokens=3)

    response = stream(client, user, conversation["id"], content="Say hello", model=model)

    assert response.status_code == 200
    assert response.mimetype == "text/event-stream"
    assert response.headers["Cache-Control"] == "no-cache" and response.headers["X-Accel-Buffering"] == "no"
    events = sse_events(response.data)
    assert events[:3] == [{"type": "token", "token": "Bon"}, {"type": "token", "token": "jour"},
                          {"type": "token", "token": " !"}]
    end = events[3]
    assert len(events) == 4 and end["type"] == "end"
    assert end["message"]["role"] == "ASSISTANT" and end["message"]["content"] == "Bonjour !"
    assert end["usage"] == {"promptTokens": 12, "completionTokens": 3, "totalTokens": 15, "estimated": False,
                            "method": "reported"}
    assert fake_llm.last_request.stream and fake_llm.last_request.body["model"] == model

    [row] = assistant_rows(db_session, conversation["id"])
    assert row.id == end["message"]["id"] and row.content == "Bonjour !"
    assert row.meta["provider"] == provider and row.meta["model"] == model
    assert row.meta["usage"] == end["usage"] and row.meta["finishReason"] == "stop" and "partial" not in row.meta
    # The end event carries the message exactly as GET /conversations/<id> (and POST .../messages) shows it.
    listed = client.get(f"/conversations/{conversation['id']}", headers=user.headers).get_json()["messages"]
    assert end["message"] == listed[-1] and set(end["message"]) == {"id", "role", "content", "meta", "createdAt"}
    assert row.meta["timings"]["timeToFirstTokenMs"] is not None
    assert row.meta["timings"]["totalMs"] >= row.meta["timings"]["timeToFirstTokenMs"]
    conversation_row = db_session.get(Conversation, conversation["id"])
    assert conversation_row.updated_at.replace(tzinfo=None) == row.created_at.replace(tzinfo=None)


@pytest.mark.parametrize("model", [OLLAMA_MODEL, OPENAI_MODEL])
def test_streams_without_usage_count_their_chunks(client, user, conversation, fake_llm, db_session, model):
    # Single-character tokens, as real servers stream them: 7 chunks are 7 tokens, not 7 characters / 4.
    fake_llm.script = Script(tokens=list("Bonjour"), report_usage=False)

    end = sse_events(stream(client, user, conversation["id"], content="x" * 20, model=model).data)[-1]

    assert end["usage"] == {"promptTokens": 9, "completionTokens": 7, "totalTokens": 16, "estimated": True,
                            "method": "chunks"}
    assert assistant_rows(db_session, conversation["id"])[0].meta["usage"] == end["usage"]


@pytest.mark.parametrize("app_overrides", [{"SSE_HEARTBEAT_SECONDS": "0.1", "PROVIDER_READ_TIMEOUT": "2"}])
def test_heartbeats_while_the_model_is_silent(client, user, conversation, fake_llm):
    fake_llm.script = Script(tokens=["late"], first_token_delay=0.5)

    body = stream(client, user, conversation["id"]).data

    assert body.startswith(b": keep-alive\n\n")
    assert body.count(b": keep-alive\n\n") >= 2
    assert [event["type"] for event in sse_events(body)] == ["token", "end"]


def test_client_leaving_closes_upstream_and_keeps_the_partial_reply(client, user, conversation, fake_llm, db_session):
    fake_llm.script = Script(tokens=[f"t{i} " for i in range(200)], token_delay=0.05)
    before = REGISTRY.get_sample_value("chat_completions_total", {
        "model": OLLAMA_MODEL, "streaming": "true", "outcome": "client_disconnect"}) or 0

    response = client.post(f"/conversations/{conversation['id']}/stream", json={"content": "count"},
                           headers=user.headers, buffered=False)
    chunks = iter(response.response)
    assert sse_events(next(chunks) + next(chunks)) == [{"type": "token", "token": "t0 "},
                                                       {"type": "token", "token": "t1 "}]
    left = time.monotonic()
    response.close()

    assert fake_llm.wait_until(lambda: fake_llm.last_request.client_closed_at, timeout=1)
    assert fake_llm.last_request.client_closed_at - left < 1
    [row] = assistant_rows(db_session, conversation["id"])
    assert row.content.startswith("t0 t1 ") and len(row.content) < 200 * 3
    assert row.meta["partial"] is True and row.meta["reason"] == "client_disconnect"
    assert row.meta["usage"]["estimated"] is True
    assert REGISTRY.get_sample_value("chat_completions_total", {
        "model": OLLAMA_MODEL, "streaming": "true", "outcome": "client_disconnect"}) == before + 1
    assert REGISTRY.get_sample_value("chat_completions_in_flight", {"streaming": "true"}) == 0


def test_leaving_right_after_the_end_event_stores_the_reply_once(client, user, conversation, fake_llm, db_session):
    response = client.post(f"/conversations/{conversation['id']}/stream", json={"content": "hi"},
                           headers=user.headers, buffered=False)
    received = b""
    for chunk in response.response:
        received += chunk
        if b'"type": "end"' in chunk:
            break
    response.close()

    [row] = assistant_rows(db_session, conversation["id"])
    assert row.content == "Hello, world!" and "partial" not in row.meta


def test_streamed_metrics(client, user, conversation, fake_llm):
    fake_llm.script = Script(tokens=["a", "b", "c"], token_delay=0.01, completion_tokens=3)
    labels = {"model": OPENAI_MODEL}
    ttft_before = REGISTRY.get_sample_value("chat_time_to_first_token_seconds_count", labels) or 0
    tpot_before = REGISTRY.get_sample_value("chat_time_per_output_token_seconds_count", labels) or 0

    assert sse_events(stream(client, user, conversation["id"], model=OPENAI_MODEL).data)[-1]["type"] == "end"

    assert REGISTRY.get_sample_value("chat_time_to_first_token_seconds_count", labels) == ttft_before + 1
    assert REGISTRY.get_sample_value("chat_time_per_output_token_seconds_count", labels) == tpot_before + 1
    assert REGISTRY.get_sample_value("chat_completions_in_flight", {"streaming": "true"}) == 0
