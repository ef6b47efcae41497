"""1,000 orgs with usage under a real three-worker gunicorn: at most K+1 values of `org` per gauge, exact values.

The bulk of the orgs is written straight into the database (1,000 registrations and chats
would take minutes); the gauges are read by the master's metrics listener and by the
workers' /metrics, as Prometheus would scrape either.
"""
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, func, select

from app.metrics.definitions import OTHER_ORG
from app.models import OrgUsageMonth
from tests.support.gateway import gateway, logged_in
from tests.support.metrics import scrape
from tests.support.servers import wait_until
from tests.usage.conftest import PRICED, cost, models_file
from tests.support.usage import add_budgets, add_orgs, add_usage, expected_usage

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

ORGS = 1000
TOP = 20  # USAGE_METRICS_TOP_ORGS' default: the servers here do not set it
ORG_GAUGES = ("gateway_usage_month_tokens", "gateway_usage_month_cost_usd")


@pytest.fixture(scope="module")
def engine(module_database_url):
    engine = create_engine(module_database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_database_url, engine, _fake_llm_server):
    org_ids = [f"org-{i:04d}" for i in range(ORGS)]
    with engine.begin() as connection:
        add_orgs(connection, org_ids)
        # Tokens spread so that ties and the order of ids both matter: i * 37 % 1000 repeats no value.
        add_usage(connection, [(org, 1 + i * 37 % ORGS, Decimal(i * 37 % ORGS) / 1000 + Decimal("0.0000000001"))
                               for i, org in enumerate(org_ids)])
        add_budgets(connection, [(org, 2000, Decimal(2)) for org in org_ids[::3]])
    env = {"USAGE_METRICS_REFRESH_SECONDS": "0.2",
           "MODELS_FILE": models_file(tmp_path_factory.mktemp("models"), _fake_llm_server)}
    with gateway(tmp_path_factory.mktemp("usage"), _fake_llm_server, database_url=module_database_url,
                 env=env) as server:
        server.wait_for_workers(3)
        yield server


def org_values(samples, name, **labels) -> dict:
    return {dict(pairs)["org"]: value for (n, pairs), value in samples.items()
            if n == name and set(labels.items()) <= pairs}


def test_a_thousand_orgs_make_at_most_k_plus_one_series_with_exact_values(server, engine):
    # One test per database, not one per check: pytest-xdist would start a server for each.
    for url in (server.metrics_url, f"{server.url}/metrics"):  # the master's listener, then a worker
        check_bounded_and_exact(scrape(url), engine)
    check_new_usage_moves_the_gauges(server, engine)
    check_chats_through_the_gateway_move_the_gauges(server)


def check_bounded_and_exact(samples, engine):
    with engine.connect() as connection:
        expected_tokens, expected_cost = expected_usage(connection, TOP)
        orgs_with_usage = connection.execute(select(func.count()).select_from(OrgUsageMonth)).scalar_one()

    for name in ORG_GAUGES:
        series = [labels for labels in samples.series(name) if "org" in labels]
        assert len(series) == TOP + 1, name
    tokens = org_values(samples, "gateway_usage_month_tokens")
    assert tokens == expected_tokens
    assert min(v for org, v in tokens.items() if org != OTHER_ORG) > max(
        1 + i * 37 % ORGS for i in range(ORGS) if f"org-{i:04d}" not in tokens)
    cost = org_values(samples, "gateway_usage_month_cost_usd")
    assert cost == {org: pytest.approx(float(value), rel=1e-12) for org, value in expected_cost.items()}
    assert samples.value("gateway_usage_month_orgs") == orgs_with_usage >= ORGS

    ratio_series = samples.series("gateway_usage_budget_used_ratio")
    for limit in ("tokens", "cost"):
        ratios = {s["org"]: samples.value("gateway_usage_budget_used_ratio", **s)
                  for s in ratio_series if s["limit"] == limit}
        assert len(ratios) == TOP + 1, limit
        named = {org: v for org, v in ratios.items() if org != OTHER_ORG}
        # 334 orgs have a budget; the named ones are the highest, `other` is the highest of the rest.
        assert ratios[OTHER_ORG] <= min(named.values())
        assert ratios[OTHER_ORG] > 0
    # Every series with an org label, over every gauge: bounded whatever the number of orgs.
    assert sum(1 for (_, pairs) in samples if any(k == "org" for k, _ in pairs)) == 4 * (TOP + 1)


def check_new_usage_moves_the_gauges(server, engine):
    with engine.begin() as connection:
        add_orgs(connection, ["newcomer"])
        add_usage(connection, [("newcomer", 10**6, Decimal("12.5"))])
    samples = wait_until(lambda: (s := scrape(server.metrics_url)).value(
        "gateway_usage_month_tokens", org="newcomer") == 10**6 and s, timeout=10, what="the newcomer at the top")
    assert samples.value("gateway_usage_month_cost_usd", org="newcomer") == 12.5
    assert len(samples.series("gateway_usage_month_tokens")) == TOP + 1
    assert samples.value("gateway_usage_month_orgs") == ORGS + 1


def check_chats_through_the_gateway_move_the_gauges(server):
    """Real traffic: an org's chats (through the usage write path) move `other`, and its budget ratio names it."""
    http = logged_in(server)
    org = http.post("/orgs", json={"name": "Chatty"}).json()["id"]
    assert http.put(f"/orgs/{org}/budget", json={"monthlyTokens": 50, "monthlyCostUsd": "0.000011"}).status_code == 200
    before = scrape(server.metrics_url)
    conversation = http.conversation(orgId=org)
    usages = [http.message(conversation, model=PRICED)["usage"] for _ in range(2)]
    used = sum(u["totalTokens"] for u in usages)
    spent = sum(cost(u["promptTokens"], u["completionTokens"]) for u in usages)
    # Above the seeded orgs' ratios (at most 0.5): named at the top of both limits.
    ratio = used / 50

    after = wait_until(lambda: (s := scrape(server.metrics_url)).value(
        "gateway_usage_budget_used_ratio", org=org, limit="tokens") == ratio and s, timeout=10,
        what="the chatting org in the budget ratios")
    assert after.value("gateway_usage_budget_used_ratio", org=org, limit="cost") == pytest.approx(float(spent / Decimal("0.000011")))
    # Too few tokens for the top 20 by tokens: its chats land in `other`, exactly.
    assert after.value("gateway_usage_month_tokens", org=org) == 0 and ("gateway_usage_month_tokens", frozenset(
        {("org", org)})) not in after
    assert after.value("gateway_usage_month_tokens", org=OTHER_ORG) - before.value(
        "gateway_usage_month_tokens", org=OTHER_ORG) == used
    assert after.value("gateway_usage_month_cost_usd", org=OTHER_ORG) - before.value(
        "gateway_usage_month_cost_usd", org=OTHER_ORG) == pytest.approx(float(spent), rel=1e-9)
    assert after.value("gateway_usage_month_orgs") == before.value("gateway_usage_month_orgs") + 1
    for limit in ("tokens", "cost"):
        assert sum(1 for s in after.series("gateway_usage_budget_used_ratio") if s["limit"] == limit) == TOP + 1
