"""POST /conversations/<id>/messages, GET /models, and what both check before any provider call."""
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import event, select

from app.models import Conversation, Message, MessageRole
from tests.chat.conftest import OLLAMA_MODEL, OPENAI_KEY, OPENAI_MODEL
from bench.fake_model import Script


def send(client, user, conversation_id, **body):
    body.setdefault("content", "Hi there")
    return client.post(f"/conversations/{conversation_id}/messages", json=body, headers=user.headers)


def stored(db_session, conversation_id):
    return list(db_session.scalars(
        select(Message).where(Message.conversation_id == conversation_id).order_by(Message.created_at)))


@pytest.mark.parametrize("model, provider, path", [
    (OLLAMA_MODEL, "ollama", "/api/chat"),
    (OPENAI_MODEL, "openai", "/v1/chat/completions"),
])
def test_reply_through_each_provider(client, user, conversation, fake_llm, db_session, model, provider, path):
    fake_llm.script = Script(tokens=["Bonjour", " !"], prompt_tokens=21, completion_tokens=3)

    response = send(client, user, conversation["id"], content="Say hello in French", model=model)

    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert body["conversationId"] == conversation["id"]
    assert body["userMessage"]["role"] == "USER" and body["userMessage"]["content"] == "Say hello in French"
    assert body["assistantMessage"]["role"] == "ASSISTANT" and body["assistantMessage"]["content"] == "Bonjour !"
    assert body["usage"] == {"promptTokens": 21, "completionTokens": 3, "totalTokens": 24, "estimated": False,
                             "method": "reported"}
    request = fake_llm.last_request
    assert request.path == path and request.body["stream"] is False and request.body["model"] == model
    assert request.body["messages"] == [{"role": "user", "content": "Say hello in French"}]
    if provider == "openai":
        assert request.headers["Authorization"] == f"Bearer {OPENAI_KEY}"

    user_row, assistant_row = stored(db_session, conversation["id"])
    assert (user_row.role, assistant_row.role) == (MessageRole.USER, MessageRole.ASSISTANT)
    meta = assistant_row.meta
    assert meta["model"] == model and meta["provider"] == provider and meta["finishReason"] == "stop"
    assert meta["usage"] == body["usage"] and "partial" not in meta
    assert meta["timings"]["totalMs"] >= 0 and meta["timings"]["timeToFirstTokenMs"] is None
    updated_at = db_session.get(Conversation, conversation["id"]).updated_at
    assert updated_at.replace(tzinfo=None) == assistant_row.created_at.replace(tzinfo=None)


def test_usage_is_estimated_when_the_provider_reports_none(client, user, conversation, fake_llm, db_session):
    fake_llm.script = Script(tokens=["abcd", "efgh"], report_usage=False)

    body = send(client, user, conversation["id"], content="x" * 40).get_json()

    # 40 characters = 10 tokens, plus 4 for the message's framing; 8 characters = 2 tokens.
    assert body["usage"] == {"promptTokens": 14, "completionTokens": 2, "totalTokens": 16, "estimated": True,
                             "method": "characters"}
    assert stored(db_session, conversation["id"])[-1].meta["usage"]["estimated"] is True


def test_request_settings_override_the_conversations(client, user, fake_llm):
    created = client.post("/conversations", json={"model": OPENAI_MODEL, "temperature": 0.3, "topP": 0.5,
                                                  "systemPrompt": "Be terse."}, headers=user.headers).get_json()

    send(client, user, created["id"])
    first = fake_llm.last_request.body
    send(client, user, created["id"], model=OLLAMA_MODEL, temperature=1.7, topP=0.1, maxTokens=50)
    second = fake_llm.last_request.body

    assert first["model"] == OPENAI_MODEL and (first["temperature"], first["top_p"]) == (0.3, 0.5)
    assert "max_tokens" not in first
    assert first["messages"][0] == {"role": "system", "content": "Be terse."}
    assert second["model"] == OLLAMA_MODEL
    assert second["options"] == {"temperature": 1.7, "top_p": 0.1, "num_predict": 50}


def test_defaults_apply_when_neither_sets_anything(client, user, conversation, fake_llm):
    send(client, user, conversation["id"])

    assert fake_llm.last_request.body["model"] == OLLAMA_MODEL
    assert "options" not in fake_llm.last_request.body


def test_history_goes_upstream_oldest_first(client, user, conversation, fake_llm):
    fake_llm.script = Script(tokens=["one"])
    send(client, user, conversation["id"], content="first")
    fake_llm.script = Script(tokens=["two"])
    send(client, user, conversation["id"], content="second")
    send(client, user, conversation["id"], content="third")

    assert fake_llm.last_request.body["messages"] == [
        {"role": "user", "content": "first"}, {"role": "assistant", "content": "one"},
        {"role": "user", "content": "second"}, {"role": "assistant", "content": "two"},
        {"role": "user", "content": "third"},
    ]


@pytest.mark.parametrize("app_overrides", [{"CONTEXT_TOKEN_BUDGET": "200"}])
def test_long_history_is_trimmed_from_the_oldest_end(app, client, user, fake_llm, db_session):
    created = client.post("/conversations", json={"systemPrompt": "S" * 200}, headers=user.headers).get_json()
    for index in range(300):  # 14 tokens each
        role = MessageRole.USER if index % 2 == 0 else MessageRole.ASSISTANT
        db_session.add(Message(conversation_id=created["id"], role=role, content=f"{index:04d}".ljust(40, ".")))
    db_session.commit()
    history_reads = []
    engine = app.extensions["db_engine"]

    def count_history_reads(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("SELECT") and "FROM messages" in statement:
            history_reads.append(statement)

    event.listen(engine, "before_cursor_execute", count_history_reads)
    try:
        assert send(client, user, created["id"], content="q" * 40).status_code == 200
    finally:
        event.remove(engine, "before_cursor_execute", count_history_reads)

    # Nine fit: one page of history is read, not the 51 rows history_limit() would allow, nor all 300.
    assert len(history_reads) == 1
    messages = fake_llm.last_request.body["messages"]
    assert messages[0] == {"role": "system", "content": "S" * 200}
    assert messages[-1] == {"role": "user", "content": "q" * 40}
    # 200 - 54 (system) - 14 (new message) leaves room for 9 messages of 14 tokens: the newest nine.
    assert [m["content"][:4] for m in messages[1:-1]] == [f"{i:04d}" for i in range(291, 300)]


@pytest.mark.parametrize("app_overrides", [{"CONTEXT_TOKEN_BUDGET": "2000"}])
def test_history_read_over_several_pages_is_contiguous(client, user, fake_llm, db_session):
    created = client.post("/conversations", json={"systemPrompt": "S" * 200}, headers=user.headers).get_json()
    for index in range(300):  # 14 tokens each, stored within the same instant more than once
        role = MessageRole.USER if index % 2 == 0 else MessageRole.ASSISTANT
        db_session.add(Message(conversation_id=created["id"], role=role, content=f"{index:04d}".ljust(40, ".")))
    db_session.commit()

    assert send(client, user, created["id"], content="q" * 40).status_code == 200

    # 2000 - 54 - 14 leaves room for 138 messages of 14 tokens: seven pages of history.
    kept = [m["content"][:4] for m in fake_llm.last_request.body["messages"][1:-1]]
    assert len(kept) == 138 and len(set(kept)) == 138 and kept == sorted(kept) and kept[-1] == "0299"


@pytest.mark.parametrize("body, field", [
    ({}, "content"),
    ({"content": ""}, "content"),
    ({"content": "   \n"}, "content"),
    ({"content": "x" * 100_001}, "content"),
    ({"content": "hi", "temperature": 2.5}, "temperature"),
    ({"content": "hi", "topP": 1.5}, "topP"),
    ({"content": "hi", "maxTokens": 0}, "maxTokens"),
    ({"content": "hi", "stream": True}, "stream"),
])
@pytest.mark.parametrize("endpoint", ["messages", "stream"])
def test_invalid_bodies_are_400_and_store_nothing(client, user, conversation, fake_llm, db_session, body, field, endpoint):
    response = client.post(f"/conversations/{conversation['id']}/{endpoint}", json=body, headers=user.headers)

    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"
    assert field in response.get_json()["error"]["details"]
    assert stored(db_session, conversation["id"]) == [] and fake_llm.requests == []


@pytest.mark.parametrize("endpoint", ["messages", "stream"])
def test_unknown_model_is_400_listing_the_accepted_ones(client, user, conversation, fake_llm, db_session, endpoint):
    response = client.post(f"/conversations/{conversation['id']}/{endpoint}",
                           json={"content": "hi", "model": "gpt-17"}, headers=user.headers)

    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "unknown_model" and "gpt-17" in error["message"]
    assert error["details"]["acceptedModels"] == [OPENAI_MODEL, OLLAMA_MODEL]
    assert stored(db_session, conversation["id"]) == [] and fake_llm.requests == []


def test_a_conversation_whose_model_left_the_catalogue_is_400(client, user, conversation, fake_llm, db_session):
    # The model was accepted when the conversation was saved, and removed from the catalogue since.
    db_session.get(Conversation, conversation["id"]).model = "retired-model"
    db_session.commit()

    response = send(client, user, conversation["id"])

    assert response.status_code == 400 and response.get_json()["error"]["code"] == "unknown_model"
    assert fake_llm.requests == []


@pytest.mark.parametrize("endpoint", ["messages", "stream"])
def test_outsiders_get_404_and_nothing_is_stored(client, auth, conversation, fake_llm, db_session, endpoint):
    outsider = auth.register()

    for conversation_id in (conversation["id"], "no-such-conversation"):
        response = client.post(f"/conversations/{conversation_id}/{endpoint}", json={"content": "hi"},
                               headers=outsider.headers)
        assert response.status_code == 404
        assert response.get_json()["error"]["code"] == "not_found"
    assert stored(db_session, conversation["id"]) == [] and fake_llm.requests == []


def test_org_members_can_chat_in_shared_conversations(client, auth, user, fake_llm):
    colleague = auth.register()
    org = client.post("/orgs", json={"name": "Acme"}, headers=colleague.headers).get_json()
    client.post(f"/orgs/{org['id']}/members", json={"email": user.email}, headers=colleague.headers)
    shared = client.post("/conversations", json={"orgId": org["id"]}, headers=colleague.headers).get_json()

    assert send(client, user, shared["id"]).status_code == 200


@pytest.mark.parametrize("method, url", [
    ("post", "/conversations/some-id/messages"),
    ("post", "/conversations/some-id/stream"),
    ("get", "/models"),
])
def test_login_required(client, method, url):
    response = getattr(client, method)(url, json={"content": "hi"} if method == "post" else None)

    assert response.status_code == 401
    assert response.get_json()["error"]["code"]


def test_models_lists_the_catalogue(client, user):
    response = client.get("/models", headers=user.headers)

    assert response.status_code == 200
    assert response.get_json() == {
        "defaultModel": OLLAMA_MODEL,
        "items": [{"name": OPENAI_MODEL, "provider": "openai", "isDefault": False},
                  {"name": OLLAMA_MODEL, "provider": "ollama", "isDefault": True}],
    }


def metric(name, **labels):
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_metrics_follow_the_stored_usage(client, user, conversation, fake_llm):
    fake_llm.script = Script(prompt_tokens=30, completion_tokens=7)
    before = {
        "ok": metric("chat_completions_total", model=OLLAMA_MODEL, streaming="false", outcome="success"),
        "prompt": metric("chat_completion_tokens_total", model=OLLAMA_MODEL, type="prompt"),
        "completion": metric("chat_completion_tokens_total", model=OLLAMA_MODEL, type="completion"),
        "timed": metric("chat_completion_duration_seconds_count", model=OLLAMA_MODEL, streaming="false"),
    }

    assert send(client, user, conversation["id"]).status_code == 200

    assert metric("chat_completions_total", model=OLLAMA_MODEL, streaming="false", outcome="success") == before["ok"] + 1
    assert metric("chat_completion_tokens_total", model=OLLAMA_MODEL, type="prompt") == before["prompt"] + 30
    assert metric("chat_completion_tokens_total", model=OLLAMA_MODEL, type="completion") == before["completion"] + 7
    assert metric("chat_completion_duration_seconds_count", model=OLLAMA_MODEL, streaming="false") == before["timed"] + 1
    assert metric("chat_completions_in_flight", streaming="false") == 0


def test_unknown_models_touch_no_metric(client, user, conversation):
    assert send(client, user, conversation["id"], model="not-configured").status_code == 400

    for outcome in ("success", "provider_error", "timeout", "client_disconnect", "internal_error"):
        labels = {"model": "not-configured", "streaming": "false", "outcome": outcome}
        assert REGISTRY.get_sample_value("chat_completions_total", labels) is None
