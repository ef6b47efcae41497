"""The per-org usage gauges on /metrics: exact values from the database, top K orgs plus `other`, cached."""
import logging
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, text

from app.metrics.definitions import OTHER_ORG
from app.metrics.usage import UsageCollector
from tests.support.metrics import parse
from tests.support.usage import add_budgets, add_orgs, add_usage, expected_usage

TOP = 3


@pytest.fixture
def app_overrides():
    return {"USAGE_METRICS_TOP_ORGS": str(TOP), "USAGE_METRICS_REFRESH_SECONDS": "0"}


@pytest.fixture
def engine(app):
    return app.extensions["db_engine"]


def gauges(client):
    response = client.get("/metrics")
    assert response.status_code == 200
    return parse(response.text)


def by_org(samples, name, **labels):
    return {dict(pairs)["org"]: value for (n, pairs), value in samples.items()
            if n == name and set(labels.items()) <= pairs}


def test_the_top_orgs_by_tokens_are_named_and_other_sums_the_rest_exactly(client, engine):
    orgs = [f"org-{i:02d}" for i in range(10)]
    with engine.begin() as connection:
        add_orgs(connection, orgs)
        add_usage(connection, [(org, 1000 * i + 7, Decimal("0.1234567891") * (i + 1)) for i, org in enumerate(orgs)])
        add_usage(connection, [("org-00", 10**9, Decimal(500))], month="2000-01")  # another month: not counted
        expected_tokens, expected_cost = expected_usage(connection, TOP)

    samples = gauges(client)
    tokens = by_org(samples, "gateway_usage_month_tokens")
    assert tokens == expected_tokens
    assert tokens == {"org-09": 9007, "org-08": 8007, "org-07": 7007, OTHER_ORG: sum(1000 * i + 7 for i in range(7))}
    cost = by_org(samples, "gateway_usage_month_cost_usd")
    assert cost.keys() == expected_cost.keys()
    for org, value in cost.items():
        assert value == pytest.approx(float(expected_cost[org]), rel=1e-12), org
    assert cost[OTHER_ORG] == pytest.approx(float(Decimal("0.1234567891") * 28), rel=1e-12)
    assert samples.value("gateway_usage_month_orgs") == 10
    assert samples.value("gateway_usage_refreshed_timestamp_seconds") > 0


def test_budget_ratios_name_the_orgs_nearest_their_limit_and_other_is_the_highest_of_the_rest(client, engine):
    orgs = [f"org-{i}" for i in range(7)]
    with engine.begin() as connection:
        add_orgs(connection, orgs)
        add_usage(connection, [(org, 100 * (i + 1), Decimal(i + 1)) for i, org in enumerate(orgs)])
        add_budgets(connection, [
            ("org-0", 100, Decimal(10)),     # tokens 100 %, cost 10 %
            ("org-1", 1000, Decimal(4)),     # 20 %, 50 %
            ("org-2", 500, None),            # 60 %, no cost limit
            ("org-3", None, Decimal(5)),     # no token limit, 80 %
            ("org-4", 5000, Decimal(100)),   # 10 %, 5 %
            ("org-5", 0, Decimal(0)),        # a zero budget allows nothing: used up
        ])                                   # org-6 has no budget: never in the ratios
    ratios = gauges(client)
    tokens = by_org(ratios, "gateway_usage_budget_used_ratio", limit="tokens")
    assert tokens == {"org-0": 1.0, "org-5": 1.0, "org-2": 0.6, OTHER_ORG: 0.2}  # the rest: org-1 20 %, org-4 10 %
    cost = by_org(ratios, "gateway_usage_budget_used_ratio", limit="cost")
    assert cost == {"org-5": 1.0, "org-3": 0.8, "org-1": 0.5, OTHER_ORG: pytest.approx(0.1)}  # org-0 10 %, org-4 5 %


def test_with_no_usage_every_gauge_still_has_its_other_series_at_zero(client):
    samples = gauges(client)
    assert by_org(samples, "gateway_usage_month_tokens") == {OTHER_ORG: 0}
    assert by_org(samples, "gateway_usage_month_cost_usd") == {OTHER_ORG: 0}
    for limit in ("tokens", "cost"):
        assert by_org(samples, "gateway_usage_budget_used_ratio", limit=limit) == {OTHER_ORG: 0}
    assert samples.value("gateway_usage_month_orgs") == 0


@pytest.mark.parametrize("app_overrides", [{"USAGE_METRICS_REFRESH_SECONDS": "3600"}])
def test_scrapes_within_the_refresh_period_reuse_the_last_read(client, engine):
    assert by_org(gauges(client), "gateway_usage_month_tokens") == {OTHER_ORG: 0}
    with engine.begin() as connection:
        add_orgs(connection, ["late"])
        add_usage(connection, [("late", 5, Decimal(1))])
    assert by_org(gauges(client), "gateway_usage_month_tokens") == {OTHER_ORG: 0}


def test_a_failing_database_keeps_the_last_values_and_is_logged_once(tmp_path, _sqlite_template, caplog):
    from tests.support.databases import sqlite_copy

    url = sqlite_copy(_sqlite_template, tmp_path)
    engine = create_engine(url)
    with engine.begin() as connection:
        add_orgs(connection, ["a"])
        add_usage(connection, [("a", 42, Decimal("0.5"))])
    collector = UsageCollector(url, top_orgs=2, refresh_seconds=0)

    def tokens():
        [family] = [f for f in collector.collect() if f.name == "gateway_usage_month_tokens"]
        return {s.labels["org"]: s.value for s in family.samples}

    assert tokens() == {"a": 42, OTHER_ORG: 0}
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE org_usage_months RENAME TO org_usage_months_away"))
    with caplog.at_level(logging.ERROR, logger="app.metrics.usage"):
        assert tokens() == {"a": 42, OTHER_ORG: 0}
        assert tokens() == {"a": 42, OTHER_ORG: 0}
    errors = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert len(errors) == 1 and "OperationalError" in errors[0] and str(tmp_path) not in errors[0]
    with engine.begin() as connection:
        connection.execute(text("ALTER TABLE org_usage_months_away RENAME TO org_usage_months"))
        add_orgs(connection, ["b"])
        add_usage(connection, [("b", 50, Decimal(1))])
    assert tokens() == {"b": 50, "a": 42, OTHER_ORG: 0}
    engine.dispose()
