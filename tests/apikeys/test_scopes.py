"""Scopes: a key does what its scopes name, each route names the one it needs, and management takes no key."""
import pytest

from app.models import API_KEY_SCOPES
from tests.support.keys import ALL_SCOPES, bearer, create_key
from tests.orgs.test_access import PLACEHOLDERS, body_for, protected_routes

# The contract, written out: the scope each route needs. Every other protected route takes no key at all.
ROUTE_SCOPES = {
    ("GET", "/v1/models"): "inference",
    ("GET", "/v1/models/<path:model_id>"): "inference",
    ("POST", "/v1/chat/completions"): "inference",
    ("POST", "/v1/embeddings"): "inference",
    ("GET", "/auth/me"): "conversations",
    ("GET", "/models"): "conversations",
    ("POST", "/conversations"): "conversations",
    ("GET", "/conversations"): "conversations",
    ("GET", "/conversations/<id>"): "conversations",
    ("PATCH", "/conversations/<id>"): "conversations",
    ("DELETE", "/conversations/<id>"): "conversations",
    ("GET", "/conversations/<id>/messages"): "conversations",
    ("POST", "/conversations/<id>/messages"): "conversations",
    ("POST", "/conversations/<id>/stream"): "conversations",
    ("GET", "/auth/me/usage"): "usage:read",
    ("GET", "/orgs/<id>/usage"): "usage:read",
    ("GET", "/api-keys/<id>/usage"): "usage:read",
}
JWT_ONLY = {("POST", "/auth/refresh")}  # refresh tokens: never a key, never an access token


def path_of(template: str) -> str:
    return template.replace("<id>", PLACEHOLDERS["id"]).replace("<user_id>", PLACEHOLDERS["user_id"])


def test_a_new_key_can_only_do_inference_unless_it_asks_for_more(client, user):
    created = create_key(client, user)
    assert created["scopes"] == ["inference"]
    assert client.get("/v1/models", headers=bearer(created["key"])).status_code == 200
    refused = client.get("/auth/me", headers=bearer(created["key"]))
    assert refused.status_code == 403
    assert refused.get_json()["error"] == {"code": "insufficient_scope", "details": {"scope": "conversations"},
                                           "message": "This API key does not have the `conversations` scope"}
    listed = client.get("/api-keys", headers=user.headers).get_json()
    assert [(k["scopes"], k["models"], k["requestsPerMinute"], k["monthlyTokens"], k["monthlyCostUsd"])
            for k in listed] == [(["inference"], None, None, None, None)]


@pytest.mark.parametrize("body, field", [
    ({"scopes": []}, "scopes"),
    ({"scopes": ["admin"]}, "scopes"),
    ({"scopes": "inference"}, "scopes"),
    ({"models": ["no-such-model"]}, "models"),
    ({"requestsPerMinute": 0}, "requestsPerMinute"),
    ({"monthlyTokens": 0}, "monthlyTokens"),
    ({"monthlyCostUsd": "-1"}, "monthlyCostUsd"),
])
def test_bad_scopes_and_limits_are_400s_naming_the_field(client, user, body, field):
    response = client.post("/api-keys", json={"name": "x", **body}, headers=user.headers)
    assert response.status_code == 400 and field in response.get_json()["error"]["details"], response.get_json()


def test_every_route_names_its_scope_or_takes_no_key(app, client, user):
    routes = set(protected_routes(app))
    assert set(ROUTE_SCOPES) <= routes
    for needed in API_KEY_SCOPES:
        key = bearer(create_key(client, user, scopes=[s for s in ALL_SCOPES if s != needed])["key"])
        for method, template in routes - JWT_ONLY:
            response = client.open(path_of(template), method=method, headers=key, json=body_for(method, template))
            error = (response.get_json() or {}).get("error", {})
            if (method, template) not in ROUTE_SCOPES:
                assert (response.status_code, error["code"]) == (401, "api_key_not_accepted"), (method, template)
            elif ROUTE_SCOPES[method, template] == needed:
                assert (response.status_code, error["code"]) == (403, "insufficient_scope"), (method, template)
                assert needed in error["message"]
            else:
                assert response.status_code not in (401, 403), (method, template, error)


def test_the_document_names_each_routes_scope(client):
    spec = client.get("/openapi.json").get_json()
    documented = {(method.upper(), path.replace("{id}", "<id>").replace("{model_id}", "<path:model_id>")): operation["x-api-key-scope"]
                  for path, item in spec["paths"].items() for method, operation in item.items()
                  if method != "parameters" and "x-api-key-scope" in operation}
    assert documented == ROUTE_SCOPES


def test_v1_refuses_a_key_without_inference_in_openais_shape(client, user):
    key = bearer(create_key(client, user, scopes=["conversations"])["key"])
    response = client.get("/v1/models", headers=key)
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "insufficient_scope"
    assert response.get_json()["error"]["type"] == "permission_error"
