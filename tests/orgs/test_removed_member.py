"""Issue 20, finding 2: a member removed from an org keeps nothing of it, not even the conversations they created.

The reproduction: after DELETE /orgs/<A>/members/<dave>, dave's access token and
his personal API key could still read, rename and chat in the org-A
conversations he created, and those chats were billed to org A.
"""
import pytest
from sqlalchemy import func, select

from app.models import UsageRecord
from tests.support.keys import ALL_SCOPES, bearer, create_key
from tests.orgs.test_orgs import add


@pytest.fixture
def dave(client, auth, user, org, fake_llm):
    """dave: a MEMBER of `org` who created a conversation there and chatted in it with his personal key; then removed."""
    dave = auth.register()
    assert add(client, org, user, dave).status_code == 201
    conversation = client.post("/conversations", json={"orgId": org["id"], "title": "dave's"},
                               headers=dave.headers).get_json()
    key = create_key(client, dave, scopes=ALL_SCOPES)
    assert client.post(f"/conversations/{conversation['id']}/messages", json={"content": "before"},
                       headers=bearer(key["key"])).status_code == 200
    assert client.delete(f"/orgs/{org['id']}/members/{dave.id}", headers=user.headers).status_code == 204
    return {"token": dave.headers, "key": bearer(key["key"])}, conversation


def billed_to(db_session, org_id: str) -> int:
    db_session.expire_all()
    return db_session.scalar(select(func.count()).select_from(UsageRecord).where(UsageRecord.org_id == org_id))


@pytest.mark.parametrize("credential", ["token", "key"])
def test_a_removed_member_can_no_longer_read_write_or_bill_the_org(client, user, org, dave, credential, db_session,
                                                                   fake_llm):
    credentials, conversation = dave
    headers, path = credentials[credential], f"/conversations/{conversation['id']}"
    billed, provider_calls = billed_to(db_session, org["id"]), len(fake_llm.requests)

    attempts = {
        "read": client.get(path, headers=headers),
        "messages": client.get(f"{path}/messages", headers=headers),
        "rename": client.patch(path, json={"title": "still mine"}, headers=headers),
        "chat": client.post(f"{path}/messages", json={"content": "after"}, headers=headers),
        "stream": client.post(f"{path}/stream", json={"content": "after"}, headers=headers),
        "delete": client.delete(path, headers=headers),
    }

    assert {name: r.status_code for name, r in attempts.items()} == dict.fromkeys(attempts, 404)
    assert {r.get_json()["error"]["code"] for r in attempts.values()} == {"not_found"}
    listed = client.get("/conversations", headers=headers).get_json()["items"]
    assert conversation["id"] not in [c["id"] for c in listed]
    assert billed_to(db_session, org["id"]) == billed and len(fake_llm.requests) == provider_calls
    # The org keeps the conversation as it was: the owner still sees it, unrenamed, with the one exchange.
    kept = client.get(path, headers=user.headers).get_json()
    assert kept["title"] == "dave's" and [m["content"] for m in kept["messages"]][0] == "before"
    assert len(kept["messages"]) == 2


def test_a_member_who_rejoins_sees_the_conversation_again(client, user, org, dave):
    credentials, conversation = dave
    rejoined = client.post(f"/orgs/{org['id']}/members", json={"email": client.get(
        "/auth/me", headers=credentials["token"]).get_json()["email"]}, headers=user.headers)
    assert rejoined.status_code == 201
    assert client.get(f"/conversations/{conversation['id']}", headers=credentials["token"]).status_code == 200
