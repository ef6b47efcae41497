"""A turn's context costs what the budget can hold, not what the conversation has: one history query for 5,000
past messages as for 50, and no more rows than fit in the budget (the database cuts the history)."""
from datetime import timedelta

import pytest
from sqlalchemy import event

from app.chat.context import message_tokens
from app.models import Message, MessageRole, new_id, utcnow

CONTENT = "x" * 36  # 13 tokens each: 50 fit in the 4,000-token budget, 5,000 do not
BUDGET = 4000


@pytest.fixture
def app_overrides():
    return {"CONTEXT_TOKEN_BUDGET": str(BUDGET)}


def add_history(app, conversation_id: str, count: int) -> None:
    start = utcnow() - timedelta(days=1)
    rows = [{"id": new_id(), "conversation_id": conversation_id, "content": f"{i:05d}" + CONTENT[5:],
             "role": MessageRole.USER if i % 2 == 0 else MessageRole.ASSISTANT, "meta": {},
             "created_at": start + timedelta(milliseconds=i)} for i in range(count)]
    with app.extensions["db_engine"].begin() as connection:
        connection.execute(Message.__table__.insert(), rows)


def one_turn(app, client, user, fake_llm, count: int) -> dict:
    """Statements and rows fetched during one turn on a conversation with `count` past messages."""
    conversation = client.post("/conversations", json={"title": f"{count}"}, headers=user.headers).get_json()
    add_history(app, conversation["id"], count)
    seen = {"statements": 0, "selected": 0}

    def counted(conn, cursor, statement, parameters, context, executemany):
        seen["statements"] += 1
        # psycopg2 knows a SELECT's row count once it ran; SQLite's cursor says -1 (the prompt counts below).
        if statement.lstrip().upper().startswith("SELECT") and cursor.rowcount > 0:
            seen["selected"] += cursor.rowcount

    engine = app.extensions["db_engine"]
    event.listen(engine, "after_cursor_execute", counted)
    try:
        response = client.post(f"/conversations/{conversation['id']}/messages", json={"content": "q"},
                               headers=user.headers)
    finally:
        event.remove(engine, "after_cursor_execute", counted)
    assert response.status_code == 200, response.get_json()
    prompt = fake_llm.last_request.body["messages"]
    seen["rows"] = len(prompt) - 1  # the history the database returned: every row of it goes into the prompt
    seen["newest"] = prompt[-2]["content"][:5]
    return seen


def test_a_5000_message_conversation_costs_what_a_50_message_one_does(app, client, user, fake_llm):
    short = one_turn(app, client, user, fake_llm, 50)
    long = one_turn(app, client, user, fake_llm, 5000)

    fits = (BUDGET - message_tokens("q")) // message_tokens(CONTENT)
    assert short["rows"] == 50 and long["rows"] == fits < 5000
    # Paging through the history cost a query per 20 messages: 3 here, 16 for the long one.
    assert short["statements"] == long["statements"]
    if short["selected"]:  # every row a SELECT returned (PostgreSQL; SQLite's cursor does not say)
        assert long["selected"] - short["selected"] == fits - 50
    assert short["newest"] == "00049" and long["newest"] == "04999"  # the newest ones, up to the budget
