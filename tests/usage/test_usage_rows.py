"""One usage row per completion, however it ends, with the org's month total beside it."""
from decimal import Decimal

from prometheus_client import REGISTRY

from app.models import month_key
from bench.fake_model import Script
from tests.support.sse import parse_sse
from tests.usage.conftest import FREE, PRICED, cost, month_totals, org_conversation, org_key, usage_rows


def cost_metric(model: str) -> float:
    return REGISTRY.get_sample_value("chat_completion_cost_usd_total", {"model": model}) or 0.0


def test_a_whole_reply_writes_its_row_with_its_message_and_exact_cost(client, user, org, fake_llm, db_session):
    conversation_id = org_conversation(client, user, org)
    before = cost_metric(PRICED)

    reply = client.post(f"/conversations/{conversation_id}/messages", json={"content": "Hi", "model": PRICED},
                        headers=user.headers).get_json()

    [row] = usage_rows(db_session)
    assert (row.message_id, row.conversation_id, row.org_id, row.user_id, row.api_key_id) == (
        reply["assistantMessage"]["id"], conversation_id, org["id"], user.id, None)
    assert (row.model, row.provider, row.prompt_tokens, row.completion_tokens, row.estimated, row.method,
            row.outcome) == (PRICED, "openai", 17, 4, False, "reported", "success")
    assert row.cost_usd == cost(17, 4) == Decimal("0.00000495")
    assert row.duration_ms is not None
    assert month_totals(db_session, org["id"]) == {month_key(row.created_at): (21, Decimal("0.00000495"))}
    assert round(cost_metric(PRICED) - before, 10) == float(row.cost_usd)
    detail = client.get(f"/conversations/{conversation_id}", headers=user.headers).get_json()
    assert detail["usage"] == {"promptTokens": 17, "completionTokens": 4, "totalTokens": 21,
                               "costUsd": "0.00000495", "completions": 1}


def test_a_streamed_reply_of_an_unpriced_model_has_no_cost(client, user, org, fake_llm, db_session):
    conversation_id = org_conversation(client, user, org)
    fake_llm.script = Script(report_usage=False)

    events = parse_sse(client.post(f"/conversations/{conversation_id}/stream", json={"content": "Hi"},
                                   headers=user.headers).get_data())

    [row] = usage_rows(db_session)
    assert events[-1]["type"] == "end" and row.message_id == events[-1]["message"]["id"]
    assert (row.model, row.completion_tokens, row.estimated, row.method, row.cost_usd) == (FREE, 4, True, "chunks", None)
    assert list(month_totals(db_session, org["id"]).values()) == [(row.prompt_tokens + 4, Decimal(0))]


def test_failed_completions_get_a_row_without_tokens(client, user, fake_llm, db_session):
    conversation_id = client.post("/conversations", json={}, headers=user.headers).get_json()["id"]
    fake_llm.script = Script(status=500)

    for endpoint in ("messages", "stream"):
        assert client.post(f"/conversations/{conversation_id}/{endpoint}", json={"content": "Hi"},
                           headers=user.headers).status_code == 502

    rows = usage_rows(db_session)
    assert [(r.outcome, r.prompt_tokens, r.completion_tokens, r.method, r.message_id, r.org_id, r.conversation_id)
            for r in rows] == [("provider_error", 0, 0, "none", None, None, conversation_id)] * 2


def test_a_partial_stream_counts_what_was_stored(client, user, org, fake_llm, db_session):
    conversation_id = org_conversation(client, user, org)
    fake_llm.script = Script(tokens=("a", "b", "c", "d"), fail_after=2, report_usage=False)

    events = parse_sse(client.post(f"/conversations/{conversation_id}/stream", json={"content": "Hi", "model": PRICED},
                                   headers=user.headers).get_data())

    assert events[-1]["type"] == "error"
    [row] = usage_rows(db_session)
    partial = client.get(f"/conversations/{conversation_id}", headers=user.headers).get_json()["messages"][-1]
    assert (row.outcome, row.completion_tokens, row.method, row.message_id) == ("provider_error", 2, "chunks", partial["id"])
    assert row.cost_usd == cost(row.prompt_tokens, 2)


def test_v1_completions_are_counted_for_the_api_keys_org(client, user, org, fake_llm, db_session):
    headers = org_key(client, user, org)
    body = {"model": PRICED, "messages": [{"role": "user", "content": "Hi"}]}

    assert client.post("/v1/chat/completions", json=body, headers=headers).status_code == 200
    streamed = client.post("/v1/chat/completions", json={**body, "stream": True}, headers=headers)
    assert streamed.status_code == 200 and streamed.get_data().endswith(b"data: [DONE]\n\n")
    fake_llm.script = Script(status=500)
    assert client.post("/v1/chat/completions", json=body, headers=headers).status_code == 502

    rows = usage_rows(db_session)
    assert {(r.org_id, r.conversation_id, r.message_id) for r in rows} == {(org["id"], None, None)}
    assert all(r.api_key_id is not None for r in rows)
    assert [(r.outcome, r.completion_tokens) for r in rows] == [("success", 4), ("success", 4), ("provider_error", 0)]
    [(tokens, total_cost)] = month_totals(db_session, org["id"]).values()
    assert tokens == 2 * 21 and total_cost == 2 * cost(17, 4)
