"""Real gunicorn, 3 workers, both databases: a key's monthly budget holds at the edge of concurrent requests.

The same bound as org budgets: requests past the check when the limit is
reached still finish and are counted, so the month ends above the limit by at
most what those completions used; none is lost across workers. 20 at once puts
many past the check together; more would test the PostgreSQL server's
max_connections (100, shared by the whole suite) instead of the budget.
"""
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests
from sqlalchemy import func, select

from app.models import ApiKeyUsageMonth, UsageRecord
from bench.fake_model import Script
from tests.support.gateway import logged_in
from tests.usage.conftest import FREE
from tests.usage.test_usage_gunicorn import server  # noqa: F401 - the module's gateway (its database: the root conftest's)

pytestmark = pytest.mark.slow  # it starts gunicorn


def test_a_keys_budget_holds_at_the_edge_of_40_concurrent_requests(server, database, fake_llm):  # noqa: F811
    owner = logged_in(server)
    per_request, needed = 21, 3  # 17 prompt + 4 completion tokens, reported
    created = owner.post("/api-keys", json={"name": "edge", "monthlyTokens": needed * per_request}).json()
    key = {"Authorization": f"Bearer {created['key']}"}
    fake_llm.script = Script(first_token_delay=0.2)
    provider_calls = len(fake_llm.requests)

    def one(_):
        return requests.post(f"{server.url}/v1/chat/completions", headers=key, timeout=30,
                             json={"model": FREE, "messages": [{"role": "user", "content": "Hi"}]})

    with ThreadPoolExecutor(20) as pool:
        responses = list(pool.map(one, range(20)))

    admitted = sum(r.status_code == 200 for r in responses)
    refused = [r for r in responses if r.status_code != 200]
    assert all(r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded" for r in refused), [
        (r.status_code, r.text[:300]) for r in refused if r.status_code != 429][:3]
    assert all(created["id"] in r.json()["error"]["message"] for r in refused)
    assert len(fake_llm.requests) - provider_calls == admitted  # no provider call for a refused request
    assert admitted >= needed  # the budget was not refused early
    with database.connect() as db:
        used = db.execute(select(ApiKeyUsageMonth.tokens).where(ApiKeyUsageMonth.api_key_id == created["id"])).scalar()
        rows = db.execute(select(func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens))
                          .where(UsageRecord.api_key_id == created["id"])).scalar()
    assert used == int(rows) == admitted * per_request  # no increment lost across workers
    assert 0 <= used - needed * per_request <= (admitted - needed) * per_request
    assert one(0).status_code == 429
    print(f"key budget edge: {admitted} admitted of 20, {len(refused)} refused")
