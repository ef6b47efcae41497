"""The per-API-key usage gauges: exact values from the database, the top K keys plus `other`, like the orgs'."""
from decimal import Decimal

import pytest
from sqlalchemy import insert

from app.metrics.definitions import OTHER_ORG
from app.models import ApiKey, ApiKeyUsageMonth, User, month_key, utcnow
from tests.support.metrics import parse

TOP = 3


@pytest.fixture
def app_overrides():
    return {"USAGE_METRICS_TOP_API_KEYS": str(TOP), "USAGE_METRICS_REFRESH_SECONDS": "0"}


def by_key(samples, name):
    return {dict(pairs)["api_key"]: value for (n, pairs), value in samples.items() if n == name}


def test_the_top_keys_by_tokens_are_named_and_other_sums_the_rest_exactly(app, client):
    keys = [f"key-{i}" for i in range(8)]
    with app.extensions["db_engine"].begin() as connection:
        connection.execute(insert(User), [{"id": "u", "email": "u@example.com", "password_hash": "x"}])
        connection.execute(insert(ApiKey), [{"id": key, "user_id": "u", "name": key, "prefix": "sk-gw-x",
                                             "key_hash": key, "scopes": ["inference"]} for key in keys])
        connection.execute(insert(ApiKeyUsageMonth), [
            {"api_key_id": key, "month": month_key(utcnow()), "tokens": 100 * i + 1, "cost_usd": Decimal("0.25") * i}
            for i, key in enumerate(keys)])
        connection.execute(insert(ApiKeyUsageMonth), [
            {"api_key_id": "key-0", "month": "2000-01", "tokens": 10**9, "cost_usd": Decimal(9)}])  # not this month

    samples = parse(client.get("/metrics").text)

    assert by_key(samples, "gateway_usage_api_key_month_tokens") == {
        "key-7": 701, "key-6": 601, "key-5": 501, OTHER_ORG: sum(100 * i + 1 for i in range(5))}
    assert by_key(samples, "gateway_usage_api_key_month_cost_usd") == {
        "key-7": 1.75, "key-6": 1.5, "key-5": 1.25, OTHER_ORG: 2.5}
    assert samples.value("gateway_usage_month_api_keys") == 8
