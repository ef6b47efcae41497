"""The OpenAPI document tells the truth about errors, bodies and streams, and cannot quietly regress."""
import pytest

BODY_METHODS = {"post", "put", "patch"}
# Operations whose extra statuses nothing in their route tells (declared with app.http.openapi.may_fail).
DECLARED = {
    ("post", "/auth/register"): {403, 409},
    ("post", "/auth/login"): {401},
    ("post", "/api-keys"): {404},
    ("get", "/orgs/{id}/api-keys"): {403},
    ("post", "/orgs/{id}/members"): {403, 409},
    ("delete", "/orgs/{id}/members/{user_id}"): {403, 409},
    ("patch", "/conversations/{id}"): {403},
    ("delete", "/conversations/{id}"): {403},
    ("post", "/v1/chat/completions"): {404},
    ("post", "/v1/embeddings"): {404},
    ("post", "/auth/password"): {403},
    ("get", "/orgs/{id}/usage"): {403},
    ("get", "/orgs/{id}/budget"): {403},
    ("put", "/orgs/{id}/budget"): {403},
}
# Operations that call a model provider (and draw on the chat rate limit).
CHAT = {("post", "/conversations/{id}/messages"), ("post", "/conversations/{id}/stream"), ("post", "/v1/chat/completions"),
        ("post", "/v1/embeddings")}
RATE_LIMITED = CHAT | {("post", "/auth/login"), ("post", "/auth/register"), ("post", "/auth/password")}


@pytest.fixture
def spec(client):
    return client.get("/openapi.json").get_json()


def operations(spec):
    for path, item in spec["paths"].items():
        for method, operation in item.items():
            if method != "parameters":
                yield method, path, operation


def expected_errors(method: str, path: str, operation: dict) -> set[int]:
    has_arguments = "requestBody" in operation or any(p["in"] == "query" for p in operation.get("parameters", []))
    statuses = set(DECLARED.get((method, path), ()))
    if "{" in path:
        statuses |= {400, 404}
    if has_arguments:
        statuses.add(400)
    if method in BODY_METHODS:
        statuses |= {400, 408, 413, 415}  # a malformed or slow body, before any route's own checks
    if "security" in operation:
        statuses |= {401, 503}
    if "x-api-key-scope" in operation:
        statuses |= {403, 429}  # a key without the scope; a key over its own requestsPerMinute
    if method in BODY_METHODS | {"delete"}:
        statuses.add(503)
    if (method, path) in RATE_LIMITED:
        statuses.add(429)
    if (method, path) in CHAT:
        statuses |= {502, 503, 504}
    return statuses


def test_every_operation_lists_the_errors_of_its_kind_in_the_real_contract(spec):
    checked = 0
    for method, path, operation in operations(spec):
        responses = operation["responses"]
        assert "default" not in responses, (method, path)
        errors = {int(status) for status in responses if int(status) >= 400}
        if path in ("/health", "/readyz"):  # their 503 is a health report, not an error
            assert errors == {503}
            continue
        assert errors == expected_errors(method, path, operation), (method, path)
        shape = "OpenAIError" if path.startswith("/v1/") else "Error"
        for status in errors:
            schema = responses[str(status)]["content"]["application/json"]["schema"]
            assert schema == {"$ref": f"#/components/schemas/{shape}"}, (method, path, status)
        assert any(200 <= int(status) < 300 for status in responses), (method, path)
        checked += 1
    assert checked >= 26


def test_the_error_schema_is_the_contract_and_the_library_default_is_gone(spec):
    schemas = spec["components"]["schemas"]
    assert schemas["Error"]["required"] == ["error"]
    assert set(schemas["ErrorDetail"]["required"]) == {"code", "message", "details"}
    assert set(schemas["OpenAIErrorDetail"]["required"]) == {"message", "type", "param", "code"}
    assert "DEFAULT_ERROR" not in spec["components"].get("responses", {})


def test_a_body_is_required_only_where_an_empty_one_is_refused(spec, client, user):
    created = client.post("/conversations", headers=user.headers)
    assert created.status_code == 201
    assert spec["paths"]["/conversations"]["post"]["requestBody"]["required"] is False
    # PATCH needs at least one field: documented as a required body of at least one property.
    assert client.patch(f"/conversations/{created.get_json()['id']}", json={}, headers=user.headers).status_code == 400
    assert spec["paths"]["/conversations/{id}"]["patch"]["requestBody"]["required"] is True
    assert spec["components"]["schemas"]["ConversationUpdate"]["minProperties"] == 1
    # A budget PUT without a body sets no limits, as `{}` does: the body is optional there too.
    org = client.post("/orgs", json={"name": "Budgets"}, headers=user.headers).get_json()
    assert client.put(f"/orgs/{org['id']}/budget", headers=user.headers).status_code == 200
    assert spec["paths"]["/orgs/{id}/budget"]["put"]["requestBody"]["required"] is False
    for method, path, operation in operations(spec):
        if path not in ("/conversations", "/orgs/{id}/budget", "/auth/logout") and "requestBody" in operation:
            assert operation["requestBody"]["required"] is True, (method, path)
    # Last, since it ends the session: logging out needs no body (`refreshToken` is optional).
    assert client.post("/auth/logout", headers=user.headers).status_code == 204
    assert spec["paths"]["/auth/logout"]["post"]["requestBody"]["required"] is False


def test_models_are_documented_as_the_catalogue(spec):
    model = spec["components"]["schemas"]["ChatRequest"]["properties"]["model"]
    assert model["enum"] == ["llama3.1", None]


def test_streams_document_their_events(spec):
    stream = spec["paths"]["/conversations/{id}/stream"]["post"]["responses"]["200"]
    event = stream["content"]["text/event-stream"]["schema"]
    refs = [ref["$ref"].rsplit("/", 1)[1] for ref in event["properties"]["data"]["contentSchema"]["oneOf"]]
    assert refs == ["StreamToken", "StreamEnd", "StreamError"]
    assert "keep-alive" in stream["description"]
    schemas = spec["components"]["schemas"]
    assert {name: schemas[name]["properties"]["type"]["enum"] for name in refs} == {
        "StreamToken": ["token"], "StreamEnd": ["end"], "StreamError": ["error"]}
    completion = spec["paths"]["/v1/chat/completions"]["post"]["responses"]["200"]["content"]
    assert completion["application/json"]["schema"] == {"$ref": "#/components/schemas/ChatCompletion"}
    data = completion["text/event-stream"]["schema"]["properties"]["data"]["anyOf"]
    assert data[0] == {"type": "string", "enum": ["[DONE]"]}
    assert data[1]["contentSchema"]["oneOf"][0] == {"$ref": "#/components/schemas/ChatCompletionChunk"}
