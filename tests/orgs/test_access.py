"""Who may do what: outsiders get 404 everywhere, members what their role allows, bad tokens 401."""
import base64
import json
from datetime import timedelta

import pytest
from flask_jwt_extended import create_access_token

from tests.support.keys import bearer, create_key

PUBLIC_ENDPOINTS = {"health.health", "health.livez", "health.readyz", "api-docs.openapi_json", "auth.register", "auth.login",
                    "prometheus_metrics", "docs.page", "docs.asset", "docs.init_script",
                    "web.page", "web.static"}  # the chat page and its files: it shows nothing until the API logs in
PLACEHOLDERS = {"id": "00000000-0000-0000-0000-000000000000", "user_id": "00000000-0000-0000-0000-000000000001"}


def body_for(method: str, template: str) -> dict | None:
    """A body each route accepts, so only access decides the status."""
    if method == "PATCH":
        return {"title": "t"}
    if method != "POST":
        return None
    if template.endswith("/members"):
        return {"email": "x@example.com"}
    if template == "/orgs":
        return {"name": "x"}
    if template == "/conversations":
        return {}
    return {"content": "hello"}


def protected_routes(app):
    for rule in app.url_map.iter_rules():
        if rule.endpoint in PUBLIC_ENDPOINTS or rule.endpoint.startswith("static"):
            continue
        for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
            yield method, rule.rule


def b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).decode().rstrip("=")


def bad_token(app, user, kind: str) -> dict | None:
    if kind == "missing":
        return {}
    with app.app_context():
        if kind == "expired":
            token = create_access_token(identity=user.id, expires_delta=timedelta(seconds=-10))
            return {"Authorization": f"Bearer {token}"}
    header, payload, signature = user.access_token.split(".")
    if kind == "tampered":
        claims = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        claims["sub"] = "someone-else"
        return {"Authorization": f"Bearer {header}.{b64(claims)}.{signature}"}
    if kind == "alg-none":
        return {"Authorization": f"Bearer {b64({'alg': 'none', 'typ': 'JWT'})}.{payload}."}
    if kind == "garbage":
        return {"Authorization": "Bearer not-a-jwt"}
    raise AssertionError(kind)


@pytest.mark.parametrize("kind", ["missing", "expired", "tampered", "alg-none", "garbage"])
def test_every_protected_route_rejects_bad_tokens(app, client, user, kind):
    routes = list(protected_routes(app))
    assert len(routes) >= 13  # the rule list is real, not empty
    headers = bad_token(app, user, kind)
    for method, template in routes:
        path = template.replace("<id>", PLACEHOLDERS["id"]).replace("<user_id>", PLACEHOLDERS["user_id"])
        response = client.open(path, method=method, headers=headers, json=body_for(method, template))
        assert response.status_code == 401, (method, path, response.get_json())
        error = response.get_json()["error"]
        assert error["code"] in {"missing_token", "invalid_token", "token_expired"} and error["message"]


@pytest.fixture
def cast(client, auth):
    """An org with one user per role, an outsider, and a conversation shared with the org by its author.

    `removed` was a member who created a conversation of their own in the org
    (people["removed"].conversation) and was then removed by the owner.
    """
    people = {name: auth.register() for name in ("author", "owner", "admin", "member", "outsider", "removed")}
    org = client.post("/orgs", json={"name": "Acme"}, headers=people["owner"].headers).get_json()
    for name, role in (("author", "MEMBER"), ("admin", "ADMIN"), ("member", "MEMBER"), ("removed", "MEMBER")):
        response = client.post(
            f"/orgs/{org['id']}/members", json={"email": people[name].email, "role": role}, headers=people["owner"].headers
        )
        assert response.status_code == 201
    conversation = client.post(
        "/conversations", json={"orgId": org["id"], "title": "shared"}, headers=people["author"].headers
    ).get_json()
    people["removed"].conversation = client.post(
        "/conversations", json={"orgId": org["id"], "title": "left behind"}, headers=people["removed"].headers
    ).get_json()
    people["removed"].key = create_key(client, people["removed"], scopes=["conversations"])["key"]
    response = client.delete(f"/orgs/{org['id']}/members/{people['removed'].id}", headers=people["owner"].headers)
    assert response.status_code == 204
    return people, org, conversation


CONVERSATION_MATRIX = {
    "author": {"GET": 200, "PATCH": 200, "DELETE": 204},
    "owner": {"GET": 200, "PATCH": 200, "DELETE": 204},
    "admin": {"GET": 200, "PATCH": 200, "DELETE": 204},
    "member": {"GET": 200, "PATCH": 403, "DELETE": 403},
    "outsider": {"GET": 404, "PATCH": 404, "DELETE": 404},
    "removed": {"GET": 404, "PATCH": 404, "DELETE": 404},
}


@pytest.mark.parametrize("who", list(CONVERSATION_MATRIX))
@pytest.mark.parametrize("method", ["GET", "PATCH", "DELETE"])
def test_conversation_access_matrix(client, cast, who, method):
    people, _, conversation = cast
    response = client.open(
        f"/conversations/{conversation['id']}", method=method, json={"title": "t"} if method == "PATCH" else None,
        headers=people[who].headers,
    )
    assert response.status_code == CONVERSATION_MATRIX[who][method], response.get_json()
    listed = [c["id"] for c in client.get("/conversations", headers=people[who].headers).get_json()["items"]]
    still_there = not (method == "DELETE" and response.status_code == 204)
    assert (conversation["id"] in listed) == (who not in {"outsider", "removed"} and still_there)


def test_outsiders_get_404_on_every_conversation_route(app, client, cast):
    people, _, conversation = cast
    routes = [(m, t) for m, t in protected_routes(app) if t.startswith("/conversations/<id>")]
    assert len(routes) >= 3
    for method, template in routes:
        response = client.open(
            template.replace("<id>", conversation["id"]), method=method, json=body_for(method, template),
            headers=people["outsider"].headers,
        )
        assert response.status_code == 404, (method, template)
        assert response.get_json()["error"]["code"] == "not_found"
    assert client.get(f"/conversations/{conversation['id']}", headers=people["author"].headers).status_code == 200


@pytest.mark.parametrize("credential", ["access token", "personal API key"])
def test_a_removed_member_gets_404_on_every_route_of_the_conversation_they_created(app, client, cast, credential):
    people, _, _ = cast
    removed = people["removed"]
    headers = removed.headers if credential == "access token" else bearer(removed.key)
    routes = [(m, t) for m, t in protected_routes(app) if t.startswith("/conversations/<id>")]
    assert len(routes) >= 5
    for method, template in routes:
        response = client.open(template.replace("<id>", removed.conversation["id"]), method=method,
                               json=body_for(method, template), headers=headers)
        assert response.status_code == 404, (method, template)
        assert response.get_json()["error"]["code"] == "not_found"
    listed = client.get("/conversations", headers=headers).get_json()["items"]
    assert removed.conversation["id"] not in [c["id"] for c in listed]
    assert client.get(f"/conversations/{removed.conversation['id']}", headers=people["owner"].headers).status_code == 200


ORG_MATRIX = {
    # who: (GET org, GET members, POST member, DELETE member)
    "owner": (200, 200, 201, 204),
    "admin": (200, 200, 201, 204),
    "member": (200, 200, 403, 403),
    "outsider": (404, 404, 404, 404),
    "removed": (404, 404, 404, 404),
}


@pytest.mark.parametrize("who", list(ORG_MATRIX))
def test_org_access_matrix(client, auth, cast, who):
    people, org, _ = cast
    headers = people[who].headers
    newcomer = auth.register()
    statuses = (
        client.get(f"/orgs/{org['id']}", headers=headers).status_code,
        client.get(f"/orgs/{org['id']}/members", headers=headers).status_code,
        client.post(f"/orgs/{org['id']}/members", json={"email": newcomer.email}, headers=headers).status_code,
        client.delete(f"/orgs/{org['id']}/members/{people['author'].id}", headers=headers).status_code,
    )
    assert statuses == ORG_MATRIX[who]
