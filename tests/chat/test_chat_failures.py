"""Provider failures: status, body and database state for each, before and during a stream."""
import socket
import threading

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from app import create_app
from app.models import Conversation, Message, MessageRole, UsageRecord
from tests.chat.conftest import OLLAMA_MODEL, OPENAI_MODEL
from tests.support.apps import close_app
from tests.support.sse import parse_sse as sse_events
from bench.fake_model import Script, closed_port_url

BEFORE_STREAMING = {
    "server error": (Script(status=500), 502, "provider_error"),
    "connection closed": (Script(refuse=True), 502, "provider_error"),
    "hang": (Script(headers_delay=5), 504, "provider_timeout"),
    "silent after headers": (Script(first_token_delay=5), 504, "provider_timeout"),
}


def rows(db_session, conversation_id):
    db_session.expire_all()
    return list(db_session.scalars(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.created_at)))


def assert_only_the_user_message(db_session, conversation, content="Hi there"):
    [row] = rows(db_session, conversation["id"])
    assert row.role == MessageRole.USER and row.content == content
    updated_at = db_session.get(Conversation, conversation["id"]).updated_at
    assert updated_at.replace(tzinfo=None) == row.created_at.replace(tzinfo=None)


def outcomes(model, streaming):
    return {outcome: REGISTRY.get_sample_value("chat_completions_total", {
        "model": model, "streaming": streaming, "outcome": outcome}) or 0
        for outcome in ("success", "provider_error", "timeout", "client_disconnect", "internal_error")}


@pytest.mark.parametrize("case, endpoint", [
    (case, endpoint) for case in BEFORE_STREAMING for endpoint in ("messages", "stream")
    if (case, endpoint) != ("silent after headers", "messages")  # a whole reply has no headers before its content
])
@pytest.mark.parametrize("model", [OLLAMA_MODEL, OPENAI_MODEL])
def test_failures_before_any_token_are_json_errors(client, user, conversation, fake_llm, db_session,
                                                   case, endpoint, model):
    script, status, code = BEFORE_STREAMING[case]
    fake_llm.script = script
    streaming = "true" if endpoint == "stream" else "false"
    before = outcomes(model, streaming)

    response = client.post(f"/conversations/{conversation['id']}/{endpoint}",
                           json={"content": "Hi there", "model": model}, headers=user.headers)

    assert response.status_code == status
    assert response.mimetype == "application/json"
    error = response.get_json()["error"]
    assert error["code"] == code and error["details"]["model"] == model
    assert [attempt["model"] for attempt in error["details"]["attempts"]] == [model]  # one upstream, no fallbacks
    assert "crashed" not in str(error) and "127.0.0.1" not in error["message"] and "://" not in str(error["details"])
    assert_only_the_user_message(db_session, conversation)
    after = outcomes(model, streaming)
    expected = "timeout" if status == 504 else "provider_error"
    assert {k: after[k] - before[k] for k in after} == {**dict.fromkeys(after, 0), expected: 1}


@pytest.mark.parametrize("endpoint", ["messages", "stream", "/v1/chat/completions", "/v1/embeddings"])
def test_unreachable_provider_is_502(app_config, user, conversation, db_session, endpoint, caplog):
    # A second app over the same database, whose Ollama is a port where nothing listens.
    url = closed_port_url()
    unreachable = create_app({**app_config, "OLLAMA_BASE_URL": url})
    bodies = {"/v1/chat/completions": {"model": OLLAMA_MODEL, "messages": [{"role": "user", "content": "Hi"}]},
              "/v1/embeddings": {"model": OLLAMA_MODEL, "input": "Hi"}}
    try:
        response = unreachable.test_client().post(
            endpoint if endpoint in bodies else f"/conversations/{conversation['id']}/{endpoint}",
            json=bodies.get(endpoint, {"content": "Hi there"}), headers=user.headers)
    finally:
        close_app(unreachable)

    assert response.status_code == 502
    error = response.get_json()["error"]
    assert error["code"] == "provider_error"
    # What a new user without a model server needs: which model, that nothing answered, and where to look.
    assert error["message"] == ("None of the upstreams of model 'llama3.1' answered: the model server is down or "
                                "unreachable. GET /health shows which model servers the gateway reaches.")
    assert url not in error["message"] and url in caplog.text  # the upstream's URL goes to the log only
    if endpoint in bodies:  # OpenAI's error shape: the attempts ride along beside its four fields
        [attempt] = error["attempts"]
    else:
        assert error["details"]["model"] == "llama3.1"
        [attempt] = error["details"]["attempts"]
    assert attempt["model"] == "llama3.1" and attempt["reason"] == "connect"
    assert attempt["upstream"].startswith("127.0.0.1:") and url not in str(error)  # its name; never its URL
    if endpoint not in bodies:
        assert_only_the_user_message(db_session, conversation)


@pytest.mark.parametrize("mode", ["error", "drop"])
@pytest.mark.parametrize("model", [OLLAMA_MODEL, OPENAI_MODEL])
def test_error_mid_stream_ends_the_stream_cleanly_and_keeps_the_partial_reply(
        client, user, conversation, fake_llm, db_session, mode, model):
    fake_llm.script = Script(tokens=["one ", "two ", "three"], fail_after=2, fail_mode=mode)

    response = client.post(f"/conversations/{conversation['id']}/stream",
                           json={"content": "Hi there", "model": model}, headers=user.headers)

    assert response.status_code == 200
    events = sse_events(response.data)
    assert events[:2] == [{"type": "token", "token": "one "}, {"type": "token", "token": "two "}]
    assert len(events) == 3 and events[2]["type"] == "error" and events[2]["error"]["code"] == "provider_error"
    assert set(events[2]["error"]) == {"code", "message", "details"} and "crashed" not in events[2]["error"]["message"]
    user_row, assistant_row = rows(db_session, conversation["id"])
    assert assistant_row.content == "one two "
    assert assistant_row.meta["partial"] is True and assistant_row.meta["reason"] == "provider_error"


def test_stall_mid_stream_is_a_timeout_event(client, user, conversation, fake_llm, db_session):
    fake_llm.script = Script(tokens=["one ", "two "], token_delay=5)

    events = sse_events(client.post(f"/conversations/{conversation['id']}/stream",
                                    json={"content": "Hi there"}, headers=user.headers).data)

    assert events == [{"type": "token", "token": "one "},
                      {"type": "error", "error": {"code": "provider_timeout", "message": "The model provider timed out.",
                                                  "details": {}}}]
    assistant_row = rows(db_session, conversation["id"])[-1]
    assert assistant_row.content == "one " and assistant_row.meta["reason"] == "provider_timeout"


@pytest.mark.parametrize("app_overrides", [{"SSE_HEARTBEAT_SECONDS": "0.1"}])
def test_failure_after_streaming_started_but_before_any_token_stores_nothing(
        client, user, conversation, fake_llm, db_session):
    fake_llm.script = Script(tokens=["never"], first_token_delay=0.3, fail_after=0)

    body = client.post(f"/conversations/{conversation['id']}/stream",
                       json={"content": "Hi there"}, headers=user.headers).data

    assert body.startswith(b": keep-alive")
    assert [event["type"] for event in sse_events(body)] == ["error"]
    assert_only_the_user_message(db_session, conversation)


def test_mid_stream_failure_in_a_whole_reply_is_502(client, user, conversation, fake_llm, db_session):
    fake_llm.script = Script(fail_after=1)

    response = client.post(f"/conversations/{conversation['id']}/messages",
                           json={"content": "Hi there"}, headers=user.headers)

    assert response.status_code == 502
    assert_only_the_user_message(db_session, conversation)


@pytest.mark.parametrize("app_overrides", [{"PROVIDER_TOTAL_TIMEOUT": "0.5", "PROVIDER_READ_TIMEOUT": "5"}])
def test_a_stream_that_outlasts_its_total_deadline_ends_with_a_timeout_event(
        client, user, conversation, fake_llm, db_session):
    # Never silent for long, but slower in all than the deadline: the idle timeout alone would wait for ever.
    fake_llm.script = Script(tokens=[f"t{i} " for i in range(100)], token_delay=0.05)

    events = sse_events(client.post(f"/conversations/{conversation['id']}/stream",
                                    json={"content": "Hi there"}, headers=user.headers).data)

    assert 3 < len(events) < 100 and {e["type"] for e in events[:-1]} == {"token"}
    assert events[-1]["type"] == "error" and events[-1]["error"]["code"] == "provider_timeout"
    assistant_row = rows(db_session, conversation["id"])[-1]
    assert assistant_row.meta["partial"] is True and assistant_row.meta["reason"] == "provider_timeout"
    assert assistant_row.meta["usage"]["completionTokens"] == len(events) - 1
    assert fake_llm.wait_until(lambda: fake_llm.last_request.client_closed_at, timeout=1)


@pytest.mark.parametrize("app_overrides", [{"PROVIDER_TOTAL_TIMEOUT": "0.5", "PROVIDER_READ_TIMEOUT": "5"}])
def test_a_whole_reply_that_outlasts_its_total_deadline_is_a_504(client, user, conversation, fake_llm, db_session):
    fake_llm.script = Script(tokens=["slow"], headers_delay=3)

    response = client.post(f"/conversations/{conversation['id']}/messages", json={"content": "Hi there"},
                           headers=user.headers)

    assert response.status_code == 504 and response.get_json()["error"]["code"] == "provider_timeout"
    assert_only_the_user_message(db_session, conversation)


@pytest.mark.parametrize("app_overrides", [{"PROVIDER_READ_TIMEOUT": "30"}])  # freed by the client, not by a timeout
@pytest.mark.parametrize("path", ["messages", "/v1/chat/completions"])
def test_a_client_leaving_a_whole_reply_frees_the_upstream_and_counts_as_client_disconnect(
        client, user, conversation, fake_llm, db_session, path):
    # The test client has no socket of its own: it gets one, as gunicorn's, whose other end the "client" closes.
    fake_llm.script = Script(hang=True)
    ours, theirs = socket.socketpair()
    url = f"/conversations/{conversation['id']}/messages" if path == "messages" else path
    body = ({"content": "Hi there"} if path == "messages"
            else {"model": OLLAMA_MODEL, "messages": [{"role": "user", "content": "Hi there"}]})
    before = outcomes(OLLAMA_MODEL, "false")

    def leave_once_asked():
        if fake_llm.wait_until(lambda: fake_llm.requests, timeout=10):
            theirs.close()

    leaving = threading.Thread(target=leave_once_asked)
    leaving.start()
    try:
        response = client.post(url, json=body, headers=user.headers, environ_overrides={"gunicorn.socket": ours})
    finally:
        leaving.join()
        ours.close()

    # The upstream socket is shut before the response returns; the fake, in its own thread, notes it soon after.
    assert fake_llm.wait_until(lambda: fake_llm.last_request.client_closed_at is not None, timeout=5)
    assert response.status_code == 499  # nobody reads it; the access log and the 5xx ratio see no failure
    assert response.get_json()["error"]["code"] == "client_closed_request"
    after = outcomes(OLLAMA_MODEL, "false")
    assert {k: after[k] - before[k] for k in after} == {**dict.fromkeys(after, 0), "client_disconnect": 1}
    db_session.expire_all()
    [record] = db_session.scalars(select(UsageRecord).where(UsageRecord.user_id == user.id)).all()
    assert record.outcome == "client_disconnect"
    if path == "messages":
        assert_only_the_user_message(db_session, conversation)
