"""Org budgets: set by OWNER/ADMIN, enforced before any provider call, reset on the 1st of each UTC month."""
from datetime import datetime, timedelta, timezone

import pytest
from sqlalchemy import text

from app.errors import ApiError
from app.usage.budgets import enforce_budget
from tests.usage.conftest import PRICED, org_conversation, org_key
from tests.usage.test_usage_api import DEC_1, LAST_MS_OF_NOV, spend


def put_budget(client, org, headers, **body):
    return client.put(f"/orgs/{org['id']}/budget", json=body, headers=headers)


def test_managers_set_a_budget_and_see_this_months_utilisation(client, auth, user, org, fake_llm):
    conversation_id = org_conversation(client, user, org)
    client.post(f"/conversations/{conversation_id}/messages", json={"content": "Hi"}, headers=user.headers)

    response = put_budget(client, org, user.headers, monthlyTokens=84, monthlyCostUsd="0.5")

    assert response.status_code == 200, response.get_json()
    budget = client.get(f"/orgs/{org['id']}/budget", headers=user.headers).get_json()
    now = datetime.now(timezone.utc)
    assert budget["monthlyTokens"] == 84 and budget["monthlyCostUsd"] == "0.5"
    assert (budget["tokensUsed"], budget["costUsedUsd"], budget["tokenUtilisation"]) == (21, "0", 0.25)
    assert budget["month"] == now.strftime("%Y-%m") and budget["resetsAt"].endswith("-01T00:00:00+00:00")
    # PUT replaces: an absent limit is no limit.
    assert put_budget(client, org, user.headers, monthlyCostUsd=1).get_json()["monthlyTokens"] is None
    member = auth.register()
    client.post(f"/orgs/{org['id']}/members", json={"email": member.email, "role": "MEMBER"}, headers=user.headers)
    assert put_budget(client, org, member.headers, monthlyTokens=1).status_code == 403
    assert client.get(f"/orgs/{org['id']}/budget", headers=member.headers).status_code == 403


@pytest.mark.parametrize("body, field", [
    ({"monthlyTokens": 0}, "monthlyTokens"),
    ({"monthlyTokens": 1.5}, "monthlyTokens"),
    ({"monthlyCostUsd": "-1"}, "monthlyCostUsd"),
    ({"monthlyCostUsd": "NaN"}, "monthlyCostUsd"),
    ({"monthlyCostUsd": 999999999}, "monthlyCostUsd"),  # was a 500 on SQLite: past its 64-bit count of 1e-10 USD
])
def test_bad_budgets_are_400s(client, user, org, body, field):
    response = put_budget(client, org, user.headers, **body)
    assert response.status_code == 400 and field in response.get_json()["error"]["details"]


def test_a_cost_finer_than_ten_places_is_rounded_to_them(client, user, org):
    # Found by Schemathesis: 3e-301 is a valid JSON number and was refused; amounts round to the stored places.
    for sent, stored in (("0.00000000006", "0.0000000001"), (3.1673546371351612e-301, "0"), ("1.23456789012", "1.2345678901")):
        assert put_budget(client, org, user.headers, monthlyCostUsd=sent).get_json()["monthlyCostUsd"] == stored


def test_the_largest_budget_is_stored_exactly(client, user, org):
    response = put_budget(client, org, user.headers, monthlyCostUsd="100000000", monthlyTokens=10**15)
    assert response.status_code == 200, response.get_json()
    stored = client.get(f"/orgs/{org['id']}/budget", headers=user.headers).get_json()
    assert (stored["monthlyCostUsd"], stored["monthlyTokens"]) == ("100000000", 10**15)


def test_a_spent_budget_refuses_chats_before_any_provider_call(client, user, org, fake_llm):
    conversation_id = org_conversation(client, user, org)
    put_budget(client, org, user.headers, monthlyTokens=21)
    assert client.post(f"/conversations/{conversation_id}/messages", json={"content": "Hi"},
                       headers=user.headers).status_code == 200  # 0 used: admitted, then 21 used
    calls = len(fake_llm.requests)

    refusals = [client.post(f"/conversations/{conversation_id}/{endpoint}", json={"content": "Hi"},
                            headers=user.headers) for endpoint in ("messages", "stream")]
    v1 = client.post("/v1/chat/completions", json={"model": PRICED, "messages": [{"role": "user", "content": "x"}]},
                     headers=org_key(client, user, org))

    assert len(fake_llm.requests) == calls
    for response in refusals:
        assert response.status_code == 429
        error = response.get_json()["error"]
        assert error["code"] == "budget_exceeded"
        assert (error["details"]["monthlyTokens"], error["details"]["tokensUsed"]) == (21, 21)
        resets_at = datetime.fromisoformat(error["details"]["resetsAt"])
        assert resets_at.day == 1 and resets_at > datetime.now(timezone.utc)
        assert 0 < int(response.headers["Retry-After"]) <= 31 * 86400
    assert v1.status_code == 429 and v1.get_json()["error"]["code"] == "budget_exceeded"
    assert v1.get_json()["error"]["type"] == "rate_limit_error" and "Retry-After" in v1.headers
    # Raising the limit lets chats through again; chats outside the org never had one.
    put_budget(client, org, user.headers, monthlyTokens=1000)
    assert client.post(f"/conversations/{conversation_id}/messages", json={"content": "Hi"},
                       headers=user.headers).status_code == 200


def test_a_cost_budget_counts_priced_models_only(client, user, org, fake_llm):
    conversation_id = org_conversation(client, user, org)
    put_budget(client, org, user.headers, monthlyCostUsd="0.000001")
    send = lambda model: client.post(f"/conversations/{conversation_id}/messages",  # noqa: E731
                                     json={"content": "Hi", "model": model}, headers=user.headers).status_code
    assert [send(None), send(None), send(PRICED), send(None)] == [200, 200, 200, 429]


def test_a_budget_spent_in_one_month_lets_chats_through_on_the_first(app, user, org, db_session):
    db_session.execute(text(
        "INSERT INTO org_budgets (org_id, monthly_tokens, updated_at) VALUES (:org, 150, :at)"),
        {"org": org["id"], "at": LAST_MS_OF_NOV})
    db_session.commit()
    spend(app, db_session, user_id=user.id, org_id=org["id"], at=LAST_MS_OF_NOV)  # 150 tokens on Nov 30

    with pytest.raises(ApiError) as refused:
        enforce_budget(session=db_session, org_id=org["id"], now=LAST_MS_OF_NOV)
    assert refused.value.details["resetsAt"] == "2026-12-01T00:00:00+00:00"
    assert refused.value.headers["Retry-After"] == "1"  # one millisecond, rounded up
    enforce_budget(session=db_session, org_id=org["id"], now=DEC_1)  # a new month: nothing used yet
    with pytest.raises(ApiError):
        enforce_budget(session=db_session, org_id=org["id"], now=DEC_1 - timedelta(days=29))
