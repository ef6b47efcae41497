"""A stream still open when its stopping worker's grace runs out ends with `shutting_down`, its reply kept."""
import time

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from app.boot import draining
from app.models import Message, MessageRole
from bench.fake_model import Script
from tests.support.sse import parse_sse

GRACE_LEFT = 0.3  # seconds of grace the worker has left when the stream starts
SLOW = Script(tokens=[f"w{i} " for i in range(100)], token_delay=0.05)


@pytest.fixture
def stopping_worker(monkeypatch, fake_llm):
    fake_llm.script = SLOW
    monkeypatch.setattr(draining, "_stream_deadline", time.monotonic() + GRACE_LEFT)


def ended(outcome: str) -> float:
    return REGISTRY.get_sample_value("chat_completions_total",
                                     {"model": "llama3.1", "streaming": "true", "outcome": outcome}) or 0


def test_a_conversation_stream_ends_with_shutting_down_and_keeps_every_token_sent(
        client, user, conversation, stopping_worker, db_session):
    before = ended("shutting_down")
    started = time.monotonic()
    response = client.post(f"/conversations/{conversation['id']}/stream", json={"content": "go"}, headers=user.headers)
    took = time.monotonic() - started

    assert response.status_code == 200
    *tokens, last = parse_sse(response.data)
    assert last == {"type": "error", "error": {"code": "shutting_down", "details": {},
                                               "message": "The server is restarting: the reply ends here"}}
    assert tokens and all(event["type"] == "token" for event in tokens) and len(tokens) < len(SLOW.tokens)
    assert took < GRACE_LEFT + 2  # one heartbeat (2 s here) at most past the deadline
    [reply] = db_session.scalars(select(Message).where(Message.conversation_id == conversation["id"],
                                                       Message.role == MessageRole.ASSISTANT))
    assert reply.content == "".join(event["token"] for event in tokens)
    assert reply.meta["partial"] is True and reply.meta["reason"] == "shutting_down"
    assert ended("shutting_down") == before + 1


def test_an_openai_stream_ends_with_a_shutting_down_error_chunk(client, user, stopping_worker):
    response = client.post("/v1/chat/completions", headers=user.headers,
                           json={"model": "llama3.1", "stream": True, "messages": [{"role": "user", "content": "go"}]})

    assert response.status_code == 200
    *chunks, last = parse_sse(response.data)
    assert last["error"]["code"] == "shutting_down" and last["error"]["type"] == "server_error"
    assert chunks and all(chunk["object"] == "chat.completion.chunk" for chunk in chunks)
    assert b"[DONE]" not in response.data  # not a clean ending
