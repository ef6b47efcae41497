"""API keys: shown once, stored as a hash, act as their user, revoked at once; org managers see and revoke scoped keys."""
import hashlib
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import select, update

from app.models import ApiKey
from tests.orgs.test_orgs import add
from tests.orgs.test_access import PLACEHOLDERS, body_for, protected_routes


def create_key(client, user, **body):
    response = client.post("/api-keys", json={"name": "laptop", **body}, headers=user.headers)
    assert response.status_code == 201, response.get_json()
    return response.get_json()


def bearer(secret: str) -> dict:
    return {"Authorization": f"Bearer {secret}"}


def test_the_key_is_shown_once_and_only_its_hash_is_stored(client, user, db_session):
    created = create_key(client, user)
    secret = created["key"]

    assert secret.startswith("sk-gw-") and len(secret) >= len("sk-gw-") + 43  # 32 random bytes, base64url
    assert created["prefix"] == secret[:12] and created["userId"] == user.id and created["orgId"] is None
    listed = client.get("/api-keys", headers=user.headers).get_json()
    assert [k["id"] for k in listed] == [created["id"]]
    assert "key" not in listed[0] and listed[0]["prefix"] == created["prefix"]
    row = db_session.scalars(select(ApiKey)).one()
    assert row.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in {str(value) for value in vars(row).values()}


def test_a_key_acts_as_its_user_and_a_revoked_one_stops_at_once(client, user):
    created = create_key(client, user)
    assert client.get("/auth/me", headers=bearer(created["key"])).get_json()["id"] == user.id
    conversation = client.post("/conversations", json={"title": "by key"}, headers=bearer(created["key"]))
    assert conversation.status_code == 201
    assert client.get(f"/conversations/{conversation.get_json()['id']}", headers=user.headers).status_code == 200

    assert client.delete(f"/api-keys/{created['id']}", headers=user.headers).status_code == 204

    response = client.get("/auth/me", headers=bearer(created["key"]))
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "invalid_api_key"
    assert client.get("/api-keys", headers=user.headers).get_json() == []
    assert client.get("/auth/me", headers=user.headers).status_code == 200  # the JWT is untouched


@pytest.mark.parametrize("secret", ["sk-gw-made-up", "sk-gw-"])
def test_every_protected_route_rejects_an_unknown_key(app, client, user, secret):
    routes = list(protected_routes(app))
    assert len(routes) >= 17
    for method, template in routes:
        path = template.replace("<id>", PLACEHOLDERS["id"]).replace("<user_id>", PLACEHOLDERS["user_id"])
        response = client.open(path, method=method, headers=bearer(secret), json=body_for(method, template))
        assert response.status_code == 401, (method, path, response.get_json())
        assert response.get_json()["error"]["code"] in {"invalid_api_key", "api_key_not_accepted", "invalid_token"}


def test_keys_are_managed_with_a_login_not_with_a_key(client, user):
    secret = create_key(client, user)["key"]
    for method, path in (("POST", "/api-keys"), ("GET", "/api-keys")):
        response = client.open(path, method=method, headers=bearer(secret), json={"name": "more"} if method == "POST" else None)
        assert response.status_code == 401 and response.get_json()["error"]["code"] == "api_key_not_accepted"


def test_an_expired_key_is_refused_and_a_past_expiry_is_a_400(client, user, db_session):
    created = create_key(client, user, expiresAt=(datetime.now(timezone.utc) + timedelta(hours=1)).isoformat())
    assert client.get("/auth/me", headers=bearer(created["key"])).status_code == 200
    db_session.execute(update(ApiKey).values(expires_at=datetime.now(timezone.utc) - timedelta(seconds=1)))
    db_session.commit()
    response = client.get("/auth/me", headers=bearer(created["key"]))
    assert response.status_code == 401 and response.get_json()["error"]["code"] == "invalid_api_key"

    past = client.post("/api-keys", json={"name": "x", "expiresAt": "2020-01-01T00:00:00+00:00"}, headers=user.headers)
    assert past.status_code == 400 and "expiresAt" in past.get_json()["error"]["details"]
    naive = client.post("/api-keys", json={"name": "x", "expiresAt": "2999-01-01T00:00:00"}, headers=user.headers)
    assert naive.status_code == 400 and "expiresAt" in naive.get_json()["error"]["details"]


def test_last_used_is_written_at_most_once_a_minute(client, user, db_session):
    created = create_key(client, user)
    assert created["lastUsedAt"] is None

    def last_used():
        db_session.expire_all()
        return db_session.scalars(select(ApiKey.last_used_at)).one()

    assert client.get("/auth/me", headers=bearer(created["key"])).status_code == 200
    first = last_used()
    assert first is not None
    for _ in range(3):
        assert client.get("/auth/me", headers=bearer(created["key"])).status_code == 200
    assert last_used() == first  # within the minute: no write
    assert client.get("/api-keys", headers=user.headers).get_json()[0]["lastUsedAt"] is not None

    db_session.execute(update(ApiKey).values(last_used_at=datetime.now(timezone.utc) - timedelta(seconds=61)))
    db_session.commit()
    assert client.get("/auth/me", headers=bearer(created["key"])).status_code == 200
    assert last_used().replace(tzinfo=None) > first.replace(tzinfo=None)


def test_a_scoped_key_needs_membership_and_dies_when_its_user_leaves(client, auth, user, org):
    outsider = auth.register()
    response = client.post("/api-keys", json={"name": "x", "orgId": org["id"]}, headers=outsider.headers)
    assert response.status_code == 404

    member = auth.register()
    assert add(client, org, user, member).status_code == 201
    scoped = create_key(client, member, orgId=org["id"])
    assert scoped["orgId"] == org["id"]
    assert client.get("/auth/me", headers=bearer(scoped["key"])).status_code == 200

    assert client.delete(f"/orgs/{org['id']}/members/{member.id}", headers=user.headers).status_code == 204
    assert client.get("/auth/me", headers=bearer(scoped["key"])).status_code == 401


ORG_KEY_MATRIX = {
    # who: (GET /orgs/<id>/api-keys, DELETE another member's scoped key, DELETE their unscoped key)
    "owner": (200, 204, 404),
    "admin": (200, 204, 404),
    "member": (403, 404, 404),
    "outsider": (404, 404, 404),
}


@pytest.mark.parametrize("who", list(ORG_KEY_MATRIX))
def test_org_managers_list_and_revoke_the_keys_scoped_to_their_org(client, auth, user, org, who):
    people = {"owner": user, "outsider": auth.register()}
    for name, role in (("admin", "ADMIN"), ("member", "MEMBER"), ("author", "MEMBER")):
        people[name] = auth.register()
        assert add(client, org, user, people[name], role).status_code == 201
    scoped = create_key(client, people["author"], orgId=org["id"])
    unscoped = create_key(client, people["author"])
    headers = people[who].headers

    listing = client.get(f"/orgs/{org['id']}/api-keys", headers=headers)
    statuses = (listing.status_code,
                client.delete(f"/api-keys/{scoped['id']}", headers=headers).status_code,
                client.delete(f"/api-keys/{unscoped['id']}", headers=headers).status_code)

    assert statuses == ORG_KEY_MATRIX[who]
    if listing.status_code == 200:
        assert [(k["id"], k["userId"]) for k in listing.get_json()] == [(scoped["id"], people["author"].id)]
    assert client.get("/auth/me", headers=bearer(unscoped["key"])).status_code == 200
    revoked = statuses[1] == 204
    assert client.get("/auth/me", headers=bearer(scoped["key"])).status_code == (401 if revoked else 200)
