"""The usage API: exact totals over half-open UTC periods, grouped by model, user or day; who may read what."""
from datetime import datetime, timedelta, timezone
from decimal import Decimal

import pytest

from app.llm import Usage
from app.usage.recording import UsageLedger
from tests.usage.conftest import FREE, PRICED, cost, month_totals, usd

NOV_1 = datetime(2026, 11, 1, tzinfo=timezone.utc)
DEC_1 = datetime(2026, 12, 1, tzinfo=timezone.utc)
LAST_MS_OF_NOV = DEC_1 - timedelta(milliseconds=1)


def spend(app, session, *, user_id, org_id=None, model=PRICED, at, prompt=100, completion=50):
    """A completion recorded as the chat code records it, at a frozen time."""
    ledger = UsageLedger(db_sessions=None, model=app.extensions["llm"].catalogue.get(model), user_id=user_id,
                         org_id=org_id, clock=lambda: at)
    ledger.write(session, outcome="success", usage=Usage(prompt, completion), timings={"totalMs": 5})
    session.commit()


def usage(client, url, headers, **params):
    response = client.get(url, query_string=params, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def test_a_month_boundary_splits_usage_and_periods_are_half_open(app, client, user, org, db_session):
    for at in (NOV_1, LAST_MS_OF_NOV, DEC_1):
        spend(app, db_session, user_id=user.id, org_id=org["id"], at=at)

    assert month_totals(db_session, org["id"]) == {"2026-11": (300, 2 * cost(100, 50)), "2026-12": (150, cost(100, 50))}
    november = usage(client, f"/orgs/{org['id']}/usage", user.headers, **{"from": "2026-11-01T00:00:00Z",
                                                                         "to": "2026-12-01T00:00:00Z"})
    assert november["from"] == "2026-11-01T00:00:00+00:00" and november["to"] == "2026-12-01T00:00:00+00:00"
    assert november["totals"] == {"promptTokens": 200, "completionTokens": 100, "totalTokens": 300,
                                  "costUsd": usd(2 * cost(100, 50)), "completions": 2}
    assert "groups" not in november
    # The same instant written in another zone; the last millisecond of November alone.
    december = usage(client, f"/orgs/{org['id']}/usage", user.headers, **{"from": "2026-12-01T01:00:00+01:00",
                                                                         "to": "2027-01-01T00:00:00Z"})
    assert december["totals"]["completions"] == 1
    last = usage(client, f"/orgs/{org['id']}/usage", user.headers,
                 **{"from": LAST_MS_OF_NOV.isoformat(), "to": DEC_1.isoformat()})
    assert last["totals"]["completions"] == 1


def test_groups_by_model_user_and_day_add_up_to_the_totals(app, client, auth, user, org, db_session):
    other = auth.register()
    assert client.post(f"/orgs/{org['id']}/members", json={"email": other.email, "role": "MEMBER"},
                       headers=user.headers).status_code == 201
    spend(app, db_session, user_id=user.id, org_id=org["id"], at=NOV_1 + timedelta(hours=1))
    spend(app, db_session, user_id=other.id, org_id=org["id"], model=FREE, at=NOV_1 + timedelta(days=1), prompt=7)
    spend(app, db_session, user_id=other.id, org_id=org["id"], at=LAST_MS_OF_NOV, completion=3)
    period = {"from": "2026-11-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}
    url = f"/orgs/{org['id']}/usage"

    by_model = usage(client, url, user.headers, groupBy="model", **period)
    assert [(g["key"], g["totalTokens"], g["costUsd"]) for g in by_model["groups"]] == [
        (FREE, 57, None), (PRICED, 253, usd(cost(100, 50) + cost(100, 3)))]
    assert by_model["totals"]["costUsd"] == usd(cost(100, 50) + cost(100, 3))
    by_user = usage(client, url, user.headers, groupBy="user", **period)
    assert {g["key"]: g["completions"] for g in by_user["groups"]} == {user.id: 1, other.id: 2}
    by_day = usage(client, url, user.headers, groupBy="day", **period)
    assert [(g["key"], g["totalTokens"]) for g in by_day["groups"]] == [
        ("2026-11-01", 150), ("2026-11-02", 57), ("2026-11-30", 103)]
    for report in (by_model, by_user, by_day):
        assert sum(g["totalTokens"] for g in report["groups"]) == report["totals"]["totalTokens"] == 310
    assert client.get(url, headers=other.headers).status_code == 403  # a MEMBER
    mine = usage(client, "/auth/me/usage", other.headers, **period)
    assert mine["totals"]["completions"] == 2


def test_my_usage_covers_every_org_and_none_and_defaults_to_this_month(app, client, auth, user, org, db_session):
    now = datetime.now(timezone.utc)
    spend(app, db_session, user_id=user.id, org_id=org["id"], at=now)
    spend(app, db_session, user_id=user.id, org_id=None, model=FREE, at=now)
    spend(app, db_session, user_id=auth.register().id, at=now)  # someone else's

    report = usage(client, "/auth/me/usage", user.headers)

    assert report["totals"]["completions"] == 2 and report["totals"]["costUsd"] == usd(cost(100, 50))
    assert report["from"].startswith(now.strftime("%Y-%m-01T00:00:00"))


@pytest.mark.parametrize("params, field", [
    ({"from": "2026-12-01T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "to"),
    ({"from": "2026-12-02T00:00:00Z", "to": "2026-12-01T00:00:00Z"}, "to"),
    ({"from": "2026-12-01T00:00:00"}, "from"),  # no zone: ambiguous
    ({"groupBy": "week"}, "groupBy"),
    ({"to": "0001-01-01T00:00:00Z"}, "to"),  # no month before it (found by Schemathesis)
    ({"from": "9999-12-31T00:00:00Z"}, "from"),  # no month after it
])
def test_bad_periods_are_400s_naming_the_field(client, user, org, params, field):
    for url in (f"/orgs/{org['id']}/usage", "/auth/me/usage"):
        response = client.get(url, query_string=params, headers=user.headers)
        assert response.status_code == 400
        assert field in response.get_json()["error"]["details"]["query"]


def test_outsiders_do_not_see_an_orgs_usage(client, auth, org):
    outsider = auth.register()
    assert client.get(f"/orgs/{org['id']}/usage", headers=outsider.headers).status_code == 404
    assert client.get(f"/orgs/{org['id']}/budget", headers=outsider.headers).status_code == 404
    assert client.get("/auth/me/usage").status_code == 401


def test_costs_are_exact_decimal_strings(app, client, user, db_session):
    for _ in range(3):  # 3 x 0.0000000150 USD: a float sum would print 4.4999999999999996e-08
        spend(app, db_session, user_id=user.id, at=datetime.now(timezone.utc), prompt=0, completion=0)
        spend(app, db_session, user_id=user.id, at=datetime.now(timezone.utc), prompt=100, completion=0)
    assert usage(client, "/auth/me/usage", user.headers)["totals"]["costUsd"] == "0.000045"
    assert Decimal("0.000045") == 3 * cost(100, 0)


@pytest.mark.parametrize("params, period", [
    # Found by Schemathesis: `to` alone, before this month, made an empty period (400) out of valid input.
    ({"to": "2000-01-01T00:00:00Z"}, ("1999-12-01T00:00:00+00:00", "2000-01-01T00:00:00+00:00")),
    ({"to": "2000-01-15T12:00:00Z"}, ("2000-01-01T00:00:00+00:00", "2000-01-15T12:00:00+00:00")),
    ({"from": "2000-02-10T00:00:00Z"}, ("2000-02-10T00:00:00+00:00", "2000-03-01T00:00:00+00:00")),
])
def test_one_bound_alone_means_its_calendar_month(client, user, org, params, period):
    for url in (f"/orgs/{org['id']}/usage", "/auth/me/usage"):
        report = usage(client, url, user.headers, **params)
        assert (report["from"], report["to"]) == period
