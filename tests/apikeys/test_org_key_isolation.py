"""Issue 20, finding 3: an API key scoped to org A works in org A's conversations and nowhere else.

The reproduction: a key scoped to org A set org B's budget, added and removed
org B's members, chatted in an org B conversation (billed to B), created
orgs, and read and deleted its user's personal conversations.
"""
import pytest
from sqlalchemy import func, select

from app.models import Org, OrgBudget, OrgMember, UsageRecord
from tests.support.keys import ALL_SCOPES, bearer, create_key
from tests.orgs.test_orgs import add


@pytest.fixture
def estate(client, auth, user):
    """`user` owns orgs A and B (bob is a member of B) and has a conversation in each and a personal one."""
    orgs = {name: client.post("/orgs", json={"name": name}, headers=user.headers).get_json() for name in "AB"}
    bob = auth.register()
    assert add(client, orgs["B"], user, bob).status_code == 201
    conversations = {
        name: client.post("/conversations", json={"title": name, **({"orgId": orgs[name]["id"]} if name in orgs else {})},
                          headers=user.headers).get_json()["id"]
        for name in ("A", "B", "personal")}
    key = bearer(create_key(client, user, orgId=orgs["A"]["id"], scopes=ALL_SCOPES)["key"])
    return orgs, conversations, key, bob


def count(db_session, model, *where) -> int:
    db_session.expire_all()
    return db_session.scalar(select(func.count()).select_from(model).where(*where))


@pytest.mark.parametrize("target", ["A", "B"])
def test_an_org_key_manages_no_org_not_even_its_own(client, auth, estate, db_session, target):
    orgs, _, key, bob = estate
    org_id, newcomer = orgs[target]["id"], auth.register()
    orgs_before = count(db_session, Org)

    attempts = {
        "set budget": client.put(f"/orgs/{org_id}/budget", json={"monthlyTokens": 1}, headers=key),
        "add member": client.post(f"/orgs/{org_id}/members", json={"email": newcomer.email}, headers=key),
        "remove member": client.delete(f"/orgs/{org_id}/members/{bob.id}", headers=key),
        "create org": client.post("/orgs", json={"name": "by key"}, headers=key),
    }

    assert {name: (r.status_code, r.get_json()["error"]["code"]) for name, r in attempts.items()} == dict.fromkeys(
        attempts, (401, "api_key_not_accepted"))
    assert count(db_session, OrgBudget) == 0
    assert count(db_session, OrgMember, OrgMember.user_id == newcomer.id) == 0
    assert count(db_session, OrgMember, OrgMember.user_id == bob.id) == 1
    assert count(db_session, Org) == orgs_before


def test_an_org_key_cannot_chat_in_another_org(client, estate, db_session, fake_llm):
    orgs, conversations, key, _ = estate
    for endpoint in ("messages", "stream"):
        response = client.post(f"/conversations/{conversations['B']}/{endpoint}", json={"content": "hi"}, headers=key)
        assert (response.status_code, response.get_json()["error"]["code"]) == (404, "not_found")
    assert count(db_session, UsageRecord, UsageRecord.org_id == orgs["B"]["id"]) == 0
    assert fake_llm.requests == []


@pytest.mark.parametrize("other", ["B", "personal"])
def test_an_org_key_neither_reads_nor_deletes_conversations_outside_its_org(client, user, estate, other):
    _, conversations, key, _ = estate
    path = f"/conversations/{conversations[other]}"
    for method in ("GET", "PATCH", "DELETE"):
        response = client.open(path, method=method, json={"title": "t"} if method == "PATCH" else None, headers=key)
        assert response.status_code == 404, method
    assert client.get(f"{path}/messages", headers=key).status_code == 404
    assert client.get(path, headers=user.headers).get_json()["title"] == other  # untouched


def test_an_org_key_lists_its_orgs_conversations_only_and_creates_them_there(client, user, estate):
    orgs, conversations, key, _ = estate
    assert [c["id"] for c in client.get("/conversations", headers=key).get_json()["items"]] == [conversations["A"]]

    created = client.post("/conversations", json={"title": "by key"}, headers=key)
    assert created.status_code == 201 and created.get_json()["orgId"] == orgs["A"]["id"]
    elsewhere = client.post("/conversations", json={"orgId": orgs["B"]["id"]}, headers=key)
    assert elsewhere.status_code == 400 and "orgId" in elsewhere.get_json()["error"]["details"]
    assert client.get(f"/conversations/{conversations['A']}", headers=key).status_code == 200
