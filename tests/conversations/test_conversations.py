import time
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import func, select

from app.models import Conversation, Message, MessageRole


def create(client, user, **body):
    response = client.post("/conversations", json=body, headers=user.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def test_create_with_settings_in_camel_case(client, user):
    body = create(client, user, title="Trip", systemPrompt="Be brief", model="llama3.1", temperature=0.3, topP=0.9)
    assert body["title"] == "Trip" and body["systemPrompt"] == "Be brief"
    assert body["temperature"] == 0.3 and body["topP"] == 0.9 and body["userId"] == user.id
    assert body["orgId"] is None and body["createdAt"].endswith("+00:00")


@pytest.mark.parametrize(
    "body, field",
    [({"temperature": 2.5}, "temperature"), ({"topP": -0.1}, "topP"), ({"title": "x" * 201}, "title"), ({"bogus": 1}, "bogus")],
)
def test_bad_settings_are_400_and_store_nothing(client, user, db_session, body, field):
    response = client.post("/conversations", json=body, headers=user.headers)
    assert response.status_code == 400
    assert field in response.get_json()["error"]["details"]
    assert db_session.scalar(select(func.count()).select_from(Conversation)) == 0


def test_org_conversation_requires_membership(client, auth, user, db_session):
    org = client.post("/orgs", json={"name": "Acme"}, headers=user.headers).get_json()
    outsider = auth.register()
    response = client.post("/conversations", json={"orgId": org["id"]}, headers=outsider.headers)
    assert response.status_code == 400 and "orgId" in response.get_json()["error"]["details"]
    assert create(client, user, orgId=org["id"])["orgId"] == org["id"]
    assert db_session.scalar(select(func.count()).select_from(Conversation)) == 1


def test_get_returns_messages_in_order(client, user, db_session):
    conversation = create(client, user)
    for index, role in enumerate([MessageRole.SYSTEM, MessageRole.USER, MessageRole.ASSISTANT]):
        db_session.add(Message(conversation_id=conversation["id"], role=role, content=f"m{index}"))
        db_session.commit()
    body = client.get(f"/conversations/{conversation['id']}", headers=user.headers).get_json()
    assert [(m["role"], m["content"]) for m in body["messages"]] == [("SYSTEM", "m0"), ("USER", "m1"), ("ASSISTANT", "m2")]


def test_patch_changes_fields_and_moves_updated_at(client, user):
    conversation = create(client, user, title="old")
    time.sleep(0.01)
    response = client.patch(f"/conversations/{conversation['id']}", json={"title": "new", "topP": 0.5}, headers=user.headers)
    assert response.status_code == 200
    body = response.get_json()
    assert body["title"] == "new" and body["topP"] == 0.5 and body["updatedAt"] > conversation["updatedAt"]
    assert client.patch(f"/conversations/{conversation['id']}", json={}, headers=user.headers).status_code == 400


def test_delete_removes_the_conversation_and_its_messages(client, user, db_session):
    conversation = create(client, user)
    db_session.add(Message(conversation_id=conversation["id"], role=MessageRole.USER, content="hi"))
    db_session.commit()
    assert client.delete(f"/conversations/{conversation['id']}", headers=user.headers).status_code == 204
    assert client.get(f"/conversations/{conversation['id']}", headers=user.headers).status_code == 404
    assert db_session.scalar(select(func.count()).select_from(Message)) == 0


def test_list_shows_mine_and_my_orgs_newest_first(client, auth, user):
    colleague = auth.register()
    org = client.post("/orgs", json={"name": "Acme"}, headers=colleague.headers).get_json()
    client.post(f"/orgs/{org['id']}/members", json={"email": user.email}, headers=colleague.headers)
    mine = create(client, user, title="mine")
    time.sleep(0.01)
    shared = create(client, colleague, title="shared", orgId=org["id"])
    time.sleep(0.01)
    create(client, colleague, title="private to colleague")
    items = client.get("/conversations", headers=user.headers).get_json()["items"]
    assert [c["id"] for c in items] == [shared["id"], mine["id"]]


def test_cursor_pagination_walks_every_conversation_once(client, user):
    created = [create(client, user, title=f"c{i}")["id"] for i in range(7)]
    seen, cursor = [], None
    while True:
        query = {"limit": 3, **({"cursor": cursor} if cursor else {})}
        body = client.get("/conversations", query_string=query, headers=user.headers).get_json()
        seen += [c["id"] for c in body["items"]]
        cursor = body["nextCursor"]
        if cursor is None:
            break
    assert seen == list(reversed(created))


def test_page_pagination_and_bad_paging_arguments(client, user):
    created = [create(client, user)["id"] for _ in range(5)]
    body = client.get("/conversations?limit=2&page=2", headers=user.headers).get_json()
    assert [c["id"] for c in body["items"]] == list(reversed(created))[2:4] and body["page"] == 2
    assert client.get("/conversations?limit=0", headers=user.headers).status_code == 400
    assert client.get("/conversations?cursor=garbage!", headers=user.headers).status_code == 400


def test_a_model_outside_the_catalogue_is_refused_on_create_and_patch(client, user, db_session):
    response = client.post("/conversations", json={"model": "no-such-model"}, headers=user.headers)
    assert response.status_code == 400
    error = response.get_json()["error"]
    assert error["code"] == "unknown_model" and error["details"]["acceptedModels"] == ["llama3.1"]
    assert db_session.scalar(select(func.count()).select_from(Conversation)) == 0
    conversation = create(client, user, model="llama3.1")
    response = client.patch(f"/conversations/{conversation['id']}", json={"model": "invented"}, headers=user.headers)
    assert response.status_code == 400
    db_session.expire_all()
    assert db_session.scalar(select(Conversation.model)) == "llama3.1"


def add_messages(db_session, conversation_id, count, content="m{}"):
    start = datetime(2026, 1, 1, tzinfo=timezone.utc)
    db_session.add_all(Message(conversation_id=conversation_id, role=MessageRole.USER if i % 2 == 0 else MessageRole.ASSISTANT,
                               content=content.format(i), created_at=start + timedelta(seconds=i))
                       for i in range(count))
    db_session.commit()


def test_a_long_conversation_comes_back_a_page_at_a_time(client, user, db_session):
    conversation = create(client, user)
    add_messages(db_session, conversation["id"], 120)

    detail = client.get(f"/conversations/{conversation['id']}", headers=user.headers).get_json()
    assert [m["content"] for m in detail["messages"]] == [f"m{i}" for i in range(70, 120)]
    seen, cursor = detail["messages"], detail["messagesNextCursor"]
    while cursor:
        page = client.get(f"/conversations/{conversation['id']}/messages?limit=30&cursor={cursor}",
                          headers=user.headers).get_json()
        seen, cursor = page["items"] + seen, page["nextCursor"]
    assert [m["content"] for m in seen] == [f"m{i}" for i in range(120)]


def test_message_pages_follow_the_visibility_rule(client, auth, user, db_session):
    conversation = create(client, user)
    add_messages(db_session, conversation["id"], 3)
    outsider = auth.register()
    assert client.get(f"/conversations/{conversation['id']}/messages", headers=outsider.headers).status_code == 404
    page = client.get(f"/conversations/{conversation['id']}/messages?limit=2", headers=user.headers).get_json()
    assert [m["content"] for m in page["items"]] == ["m1", "m2"] and page["nextCursor"]
    assert client.get(f"/conversations/{conversation['id']}/messages?limit=500", headers=user.headers).status_code == 400
