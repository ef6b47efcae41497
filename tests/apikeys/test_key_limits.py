"""Per-key limits chosen at creation: a model allow-list, requests a minute, and a monthly budget of its own."""
from decimal import Decimal

import pytest
from prometheus_client import REGISTRY
from sqlalchemy import select

from app.models import ApiKeyUsageMonth, month_key, utcnow
from tests.support.keys import bearer, create_key
from tests.usage.conftest import FREE, PRICED, cost

ASK = {"messages": [{"role": "user", "content": "Hi"}]}


def v1(client, key, model=FREE):
    return client.post("/v1/chat/completions", json={**ASK, "model": model}, headers=key)


def test_a_model_outside_the_allow_list_is_403_before_any_provider_call(client, user, fake_llm):
    created = create_key(client, user, models=[FREE], scopes=["inference", "conversations"])
    key = bearer(created["key"])
    conversation = client.post("/conversations", json={}, headers=key).get_json()["id"]

    assert v1(client, key).status_code == 200
    refused = [v1(client, key, PRICED),
               client.post(f"/conversations/{conversation}/messages", json={"content": "Hi", "model": PRICED},
                           headers=key),
               client.post(f"/conversations/{conversation}/stream", json={"content": "Hi", "model": PRICED},
                           headers=key),
               client.post("/v1/embeddings", json={"model": PRICED, "input": "Hi"}, headers=key)]

    assert [(r.status_code, r.get_json()["error"]["code"]) for r in refused] == [(403, "model_not_allowed")] * 4
    assert refused[0].get_json()["error"]["type"] == "permission_error"  # OpenAI's shape on /v1
    assert PRICED in refused[1].get_json()["error"]["message"]
    assert len(fake_llm.requests) == 1
    assert client.get("/api-keys", headers=user.headers).get_json()[0]["models"] == [FREE]
    # The user's access token has no allow-list.
    assert client.post(f"/conversations/{conversation}/messages", json={"content": "Hi", "model": PRICED},
                       headers=user.headers).status_code == 200


def hits(limit: str) -> float:
    return REGISTRY.get_sample_value("rate_limit_hits_total", {"limit": limit}) or 0.0


@pytest.mark.parametrize("app_overrides", [{"RATE_LIMITS_ENABLED": "true", "RATE_LIMIT_CHAT_USER": "1000/minute"}])
def test_requests_per_minute_counts_each_key_on_every_route(client, user, fake_llm):
    limited = create_key(client, user, requestsPerMinute=2, scopes=["inference", "conversations"])
    other = bearer(create_key(client, user)["key"])
    key, before = bearer(limited["key"]), hits("api_key")

    statuses = [v1(client, key).status_code, client.get("/auth/me", headers=key).status_code]
    refused = client.get("/v1/models", headers=key)

    assert statuses == [200, 200]
    assert refused.status_code == 429 and refused.get_json()["error"]["code"] == "too_many_requests"
    assert 0 < int(refused.headers["Retry-After"]) <= 60
    assert client.get("/auth/me", headers=key).status_code == 429  # any route: the count is the key's
    assert hits("api_key") - before == 2
    assert v1(client, other).status_code == 200 and client.get("/auth/me", headers=user.headers).status_code == 200
    assert client.get("/api-keys", headers=user.headers).get_json()[0]["requestsPerMinute"] == 2


def key_month(db_session, key_id: str) -> tuple[int, Decimal] | None:
    db_session.expire_all()
    row = db_session.scalar(select(ApiKeyUsageMonth).where(ApiKeyUsageMonth.api_key_id == key_id,
                                                           ApiKeyUsageMonth.month == month_key(utcnow())))
    return (row.tokens, row.cost_usd) if row else None


def test_a_spent_token_budget_refuses_the_key_and_names_it(client, user, fake_llm, db_session):
    created = create_key(client, user, monthlyTokens=21, scopes=["inference", "conversations"])
    key = bearer(created["key"])
    conversation = client.post("/conversations", json={}, headers=key).get_json()["id"]

    assert v1(client, key).status_code == 200  # 0 used: admitted, then 21 used
    calls = len(fake_llm.requests)
    refused = [v1(client, key), client.post(f"/conversations/{conversation}/messages", json={"content": "Hi"},
                                            headers=key)]

    assert len(fake_llm.requests) == calls
    for response in refused:
        assert response.status_code == 429 and 0 < int(response.headers["Retry-After"]) <= 31 * 86400
        error = response.get_json()["error"]
        assert error["code"] == "budget_exceeded" and created["id"] in error["message"]
    details = refused[1].get_json()["error"]["details"]
    assert (details["apiKeyId"], details["monthlyTokens"], details["tokensUsed"]) == (created["id"], 21, 21)
    assert key_month(db_session, created["id"]) == (21, Decimal(0))
    # The budget is the key's: the same user's access token and other keys go on.
    assert client.post(f"/conversations/{conversation}/messages", json={"content": "Hi"},
                       headers=user.headers).status_code == 200
    assert v1(client, bearer(create_key(client, user)["key"])).status_code == 200


def test_a_cost_budget_counts_priced_models_only(client, user, fake_llm, db_session):
    created = create_key(client, user, monthlyCostUsd="0.000001")
    key = bearer(created["key"])
    assert [v1(client, key).status_code, v1(client, key).status_code, v1(client, key, PRICED).status_code,
            v1(client, key).status_code] == [200, 200, 200, 429]
    assert key_month(db_session, created["id"]) == (63, cost(17, 4))
    assert client.get("/api-keys", headers=user.headers).get_json()[0]["monthlyCostUsd"] == "0.000001"


def test_an_org_keys_budget_and_its_orgs_both_hold(client, user, org, fake_llm):
    created = create_key(client, user, orgId=org["id"], monthlyTokens=1000)
    assert client.put(f"/orgs/{org['id']}/budget", json={"monthlyTokens": 21}, headers=user.headers).status_code == 200
    key = bearer(created["key"])
    assert v1(client, key).status_code == 200
    refused = v1(client, key)
    assert refused.status_code == 429 and "organisation" in refused.get_json()["error"]["message"]
