"""Real gunicorn, 3 workers, both databases: usage API == usage rows == scraped counters, and budgets at the edge.

The cost counter is a float sum of floats of 10-place decimals; a double
carries 15-16 significant digits, so over a few dozen completions of these
sizes its error is far below 1e-10 USD. Rounded to the 10th decimal place it
must equal the exact Decimal sum of the rows; the tokens must match exactly.
"""
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
import requests
from sqlalchemy import func, select

from app.models import OrgUsageMonth, UsageRecord
from bench.fake_model import Script
from tests.support.gateway import gateway, logged_in
from tests.support.metrics import scrape
from tests.support.servers import wait_until
from tests.usage.conftest import FREE, PRICED, models_file

pytestmark = pytest.mark.slow

MODELS = (FREE, PRICED)
NONE = (0, 0, None, 0)


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_database_url, _fake_llm_server):
    directory = tmp_path_factory.mktemp("usage-gateway")
    env = {"MODELS_FILE": models_file(directory, _fake_llm_server), "SSE_HEARTBEAT_SECONDS": "2",
           "LOG_LEVEL": "WARNING", "CHAT_MAX_CONCURRENT": "1000"}
    with gateway(directory, _fake_llm_server, database_url=module_database_url, workers=3, env=env) as server:
        server.wait_for_workers(3)
        yield server


def rows_by_model(database) -> dict[str, tuple[int, int, Decimal | None, int]]:
    with database.connect() as db:
        query = (select(UsageRecord.model, func.sum(UsageRecord.prompt_tokens), func.sum(UsageRecord.completion_tokens),
                        func.sum(UsageRecord.cost_usd), func.count()).group_by(UsageRecord.model))
        return {model: (int(p), int(c), cost, n) for model, p, c, cost, n in db.execute(query)}


def new_org(server, name: str):
    owner = logged_in(server)
    org = owner.post("/orgs", json={"name": name}).json()
    key = owner.post("/api-keys", json={"name": "ci", "orgId": org["id"]}).json()["key"]
    conversation = owner.conversation(orgId=org["id"])
    return owner, org, {"Authorization": f"Bearer {key}"}, conversation


def traffic(server, owner, key, conversation) -> list[int]:
    """Whole and streamed chats, /v1 whole and streamed, on both models: the statuses."""
    url = server.url
    chat = {"content": "Hi"}
    v1 = {"messages": [{"role": "user", "content": "Hi"}]}
    calls = [
        lambda: requests.post(f"{url}/conversations/{conversation}/messages", json={**chat, "model": FREE},
                              headers=owner.headers, timeout=30),
        lambda: requests.post(f"{url}/conversations/{conversation}/messages", json={**chat, "model": PRICED},
                              headers=owner.headers, timeout=30),
        lambda: requests.post(f"{url}/conversations/{conversation}/stream", json={**chat, "model": PRICED},
                              headers=owner.headers, timeout=30),
        lambda: requests.post(f"{url}/v1/chat/completions", json={**v1, "model": PRICED}, headers=key, timeout=30),
        lambda: requests.post(f"{url}/v1/chat/completions", json={**v1, "model": FREE, "stream": True},
                              headers=key, timeout=30),
    ]
    with ThreadPoolExecutor(len(calls)) as pool:
        responses = list(pool.map(lambda call: call(), calls))
    for response in responses:  # a stream's body carries its ending, success or error
        response.content
    return [r.status_code for r in responses]


def test_usage_api_rows_and_counters_agree_exactly(server, database, fake_llm):
    orgs = [new_org(server, f"org{i}") for i in range(3)]
    before_rows, before = rows_by_model(database), scrape(server.metrics_url)

    statuses = []
    for script in (Script(), Script(report_usage=False), Script(status=500),
                   Script(tokens=("a", "b", "c"), fail_after=1)):
        fake_llm.script = script
        for owner, _, key, conversation in orgs:
            statuses += traffic(server, owner, key, conversation)
    assert {200, 502} <= set(statuses)

    after_rows = rows_by_model(database)
    delta = {}  # model: (prompt tokens, completion tokens, rows) written by this test
    for model in MODELS:
        (prompt, completion, _, count), (prompt0, completion0, _, count0) = after_rows[model], before_rows.get(model, NONE)
        delta[model] = (prompt - prompt0, completion - completion0, count - count0)
    assert sum(n for _, _, n in delta.values()) == len(statuses)  # one row per completion

    def counters_caught_up():
        now = scrape(server.metrics_url)
        return all(now.value("chat_completion_tokens_total", model=m, type=t) - before.value(
            "chat_completion_tokens_total", model=m, type=t) == delta[m][i]
            for m in MODELS for i, t in enumerate(("prompt", "completion"))) and now
    after = wait_until(counters_caught_up, timeout=10, what="token counters equal to the usage rows")

    priced_cost = after_rows[PRICED][2] - (before_rows.get(PRICED, NONE)[2] or Decimal(0))
    scraped_cost = (after.value("chat_completion_cost_usd_total", model=PRICED)
                    - before.value("chat_completion_cost_usd_total", model=PRICED))
    assert priced_cost > 0 and round(scraped_cost, 10) == float(priced_cost)
    assert after_rows[FREE][2] is None and after.value("chat_completion_cost_usd_total", model=FREE) == 0

    api_total = {"promptTokens": 0, "completionTokens": 0, "costUsd": Decimal(0), "completions": 0}
    for owner, org, _, _ in orgs:
        report = owner.get(f"/orgs/{org['id']}/usage", params={"groupBy": "model"}).json()
        with database.connect() as db:
            tokens, cost = db.execute(select(func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens),
                                             func.sum(UsageRecord.cost_usd)).where(UsageRecord.org_id == org["id"])).one()
            month = db.execute(select(OrgUsageMonth.tokens, OrgUsageMonth.cost_usd)
                               .where(OrgUsageMonth.org_id == org["id"])).one()
        assert report["totals"]["totalTokens"] == int(tokens) == month.tokens
        assert Decimal(report["totals"]["costUsd"]) == cost == month.cost_usd
        for name in ("promptTokens", "completionTokens", "completions"):
            api_total[name] += report["totals"][name]
        api_total["costUsd"] += Decimal(report["totals"]["costUsd"])
    assert (api_total["promptTokens"], api_total["completionTokens"], api_total["completions"]) == (
        sum(d[0] for d in delta.values()), sum(d[1] for d in delta.values()), len(statuses))
    assert api_total["costUsd"] == priced_cost


def test_a_budget_holds_at_the_edge_of_50_concurrent_requests(server, database, fake_llm):
    owner, org, key, conversation = new_org(server, "edge")
    fake_llm.script = Script(first_token_delay=0.2)
    owner.message(conversation)  # 21 tokens used (17 prompt + 4 completion, reported)
    per_request, needed = 21, 3
    assert owner.put(f"/orgs/{org['id']}/budget", json={"monthlyTokens": 21 + needed * per_request}).status_code == 200
    provider_calls = len(fake_llm.requests)

    def one(i):
        if i % 2:
            return requests.post(f"{server.url}/v1/chat/completions", headers=key, timeout=30,
                                 json={"model": FREE, "messages": [{"role": "user", "content": "Hi"}]})
        return requests.post(f"{server.url}/conversations/{conversation}/messages", json={"content": "Hi"},
                             headers=owner.headers, timeout=30)

    with ThreadPoolExecutor(50) as pool:
        responses = list(pool.map(one, range(50)))

    admitted = sum(r.status_code == 200 for r in responses)
    refused = [r for r in responses if r.status_code != 200]
    assert all(r.status_code == 429 and r.json()["error"]["code"] == "budget_exceeded" for r in refused), \
        [(r.status_code, r.text[:300]) for r in refused if r.status_code != 429]
    assert len(fake_llm.requests) - provider_calls == admitted  # no provider call for a refused request
    assert admitted >= needed  # the budget was not refused early
    used = owner.get(f"/orgs/{org['id']}/budget").json()["tokensUsed"]
    with database.connect() as db:
        rows = db.execute(select(func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens))
                          .where(UsageRecord.org_id == org["id"])).scalar()
    assert used == int(rows) == 21 + admitted * per_request  # no increment lost across workers
    overshoot = used - (21 + needed * per_request)
    assert 0 <= overshoot <= (admitted - needed) * per_request
    # Once the last admitted completion is counted, everything is refused, whatever the route.
    after = [owner.post(f"/conversations/{conversation}/messages", json={"content": "Hi"}),
             owner.post(f"/conversations/{conversation}/stream", json={"content": "Hi"}),
             requests.post(f"{server.url}/v1/chat/completions", headers=key, timeout=30,
                           json={"model": PRICED, "messages": [{"role": "user", "content": "x"}], "stream": True})]
    assert [r.status_code for r in after] == [429, 429, 429]
    assert len(fake_llm.requests) - provider_calls == admitted
    print(f"budget edge: {admitted} admitted of 50, {len(refused)} refused, overshoot {overshoot} tokens")
