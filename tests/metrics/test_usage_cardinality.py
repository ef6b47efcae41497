"""1,000 orgs chatting through a real three-worker gunicorn: at most K+1 values of `org` per gauge, exact values.

A few registered users own the 1,000 orgs, each with a budget on every third and a
conversation, made in the database by the service functions the routes call (create_org,
put_budget; their HTTP is tested in tests/orgs and tests/usage, and 2,300 more requests
here cost a tenth of the suite's CPU). Then each org has one whole chat through the
gateway (POST /conversations/<id>/messages), from a pool of threads. The fake
provider counts one prompt token per word, so each org's chat has its own size and the
top K is decided by the traffic, with a tie across its boundary that the org ids break.
The gauges are read by the master's metrics listener and by the workers' /metrics, as
Prometheus would scrape either, and compared with the database and with what each chat's
reply said it used.
"""
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session

from app.metrics.definitions import OTHER_ORG
from app.models import Conversation, OrgUsageMonth, month_key, new_id, utcnow
from app.orgs.service import create_org
from app.usage.budgets import put_budget
from bench.fake_model import Script
from tests.support.client import GatewayClient
from tests.support.gateway import gateway, logged_in
from tests.support.metrics import scrape
from tests.support.servers import wait_until
from tests.support.usage import expected_usage
from tests.usage.conftest import PRICED, cost, models_file

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

ORGS = 1000
USERS = 4  # each owns 250 orgs: the membership checks of every chat look through them
THREADS = 24
TOP = 20  # USAGE_METRICS_TOP_ORGS' default: the servers here do not set it
ORG_GAUGES = ("gateway_usage_month_tokens", "gateway_usage_month_cost_usd")
TOKEN_BUDGET, COST_BUDGET = 2000, Decimal("0.0002")  # every third org's; its ratios stay below 0.4


def words(i: int) -> int:
    """Org i's prompt, in words (= prompt tokens): 1 to 501, each value twice but the ends.

    By tokens the 1st org stands alone, then pairs: the 20th and 21st tie, and the org id decides.
    """
    return 1 + (i * 37 % ORGS + 1) // 2


@pytest.fixture(scope="module")
def engine(module_database_url):
    engine = create_engine(module_database_url)
    yield engine
    engine.dispose()


@pytest.fixture(scope="module")
def fake(_fake_llm_server):
    yield _fake_llm_server
    _fake_llm_server.reset()


@pytest.fixture(scope="module")
def server(tmp_path_factory, module_database_url, fake):
    env = {"USAGE_METRICS_REFRESH_SECONDS": "0.2", "MODELS_FILE": models_file(tmp_path_factory.mktemp("models"), fake)}
    with gateway(tmp_path_factory.mktemp("usage"), fake, database_url=module_database_url, env=env) as server:
        server.wait_for_workers(3)
        yield server


@pytest.fixture(scope="module")
def replies(server, fake, engine) -> dict:
    """{org id: (tokens, cost)} as the 1,000 orgs' chat replies reported them, after sending them all."""
    fake.reset(Script(prompt_tokens=None))  # here, not in `fake`: that outlives one database's server
    users = [logged_in(server) for _ in range(USERS)]
    conversations = make_orgs(engine, [user.user["id"] for user in users])
    results, lock = {}, threading.Lock()

    def one_thread(n: int) -> None:
        with GatewayClient(server.url) as http:
            http.headers["Authorization"] = users[n % USERS].headers["Authorization"]  # the owner of org n + k*24
            for i in range(n, ORGS, THREADS):
                org, conversation = conversations[i]
                usage = http.message(conversation, content=" ".join(["word"] * words(i)), model=PRICED)["usage"]
                with lock:
                    results[org] = (usage["totalTokens"], cost(usage["promptTokens"], usage["completionTokens"]))

    started = time.monotonic()
    with ThreadPoolExecutor(THREADS) as pool:
        list(pool.map(one_thread, range(THREADS)))  # list(): an assertion failing in a thread fails here
    elapsed = time.monotonic() - started
    print(f"{ORGS} orgs' chats in {elapsed:.1f} s: {ORGS / elapsed:.0f} chats/s")
    assert len(results) == ORGS
    return results


def make_orgs(engine, owners: list[str]) -> list[tuple[str, str]]:
    """Org i, owned by owners[i % USERS], a budget on every third, and a conversation in each: [(org, conversation)]."""
    made = []
    with Session(engine) as session:
        for i in range(ORGS):
            owner = owners[i % USERS]
            org = create_org(session=session, user_id=owner, name=f"Org {i:04d}")["id"]
            if i % 3 == 0:
                put_budget(session=session, org_id=org, monthly_tokens=TOKEN_BUDGET, monthly_cost_usd=COST_BUDGET)
            made.append((org, new_id()))
            session.add(Conversation(id=made[-1][1], user_id=owner, org_id=org))
        session.commit()
    return made


def org_values(samples, name, **labels) -> dict:
    return {dict(pairs)["org"]: value for (n, pairs), value in samples.items()
            if n == name and set(labels.items()) <= pairs}


def test_a_thousand_orgs_make_at_most_k_plus_one_series_with_exact_values(server, engine, replies, fake):
    # One test per database, not one per check: pytest-xdist would start a server for each.
    check_the_database_holds_what_the_replies_said(engine, replies)
    for url in (server.metrics_url, f"{server.url}/metrics"):  # the master's listener, then a worker
        check_bounded_and_exact(scrape(url), engine, replies)
    check_a_big_chat_moves_its_org_to_the_top(server)
    fake.script = Script()  # 17 + 4 tokens a chat, as the budget below expects
    check_small_chats_move_other_and_the_budget_ratios(server)


def check_the_database_holds_what_the_replies_said(engine, replies):
    with engine.connect() as connection:
        rows = connection.execute(select(OrgUsageMonth.org_id, OrgUsageMonth.tokens, OrgUsageMonth.cost_usd)
                                  .where(OrgUsageMonth.month == month_key(utcnow()))).all()
    assert {row.org_id: (row.tokens, Decimal(row.cost_usd)) for row in rows} == replies


def check_bounded_and_exact(samples, engine, replies):
    with engine.connect() as connection:
        expected_tokens, expected_cost = expected_usage(connection, TOP)
        orgs_with_usage = connection.execute(select(func.count()).select_from(OrgUsageMonth)).scalar_one()

    for name in ORG_GAUGES:
        series = [labels for labels in samples.series(name) if "org" in labels]
        assert len(series) == TOP + 1, name
    tokens = org_values(samples, "gateway_usage_month_tokens")
    assert tokens == expected_tokens
    named = [v for org, v in tokens.items() if org != OTHER_ORG]
    unnamed = [used for org, (used, _) in replies.items() if org not in tokens]
    # The top 20 by what the chats used; the 20th ties with the 21st, which the org id left out.
    assert min(named) == max(unnamed)
    assert tokens[OTHER_ORG] == sum(unnamed)
    cost = org_values(samples, "gateway_usage_month_cost_usd")
    assert cost == {org: pytest.approx(float(value), rel=1e-12) for org, value in expected_cost.items()}
    assert samples.value("gateway_usage_month_orgs") == orgs_with_usage == ORGS

    ratio_series = samples.series("gateway_usage_budget_used_ratio")
    for limit in ("tokens", "cost"):
        ratios = {s["org"]: samples.value("gateway_usage_budget_used_ratio", **s)
                  for s in ratio_series if s["limit"] == limit}
        assert len(ratios) == TOP + 1, limit
        named_ratios = {org: v for org, v in ratios.items() if org != OTHER_ORG}
        # 334 orgs have a budget; the named ones are the highest, `other` is the highest of the rest.
        assert ratios[OTHER_ORG] <= min(named_ratios.values())
        assert 0 < ratios[OTHER_ORG] < max(named_ratios.values()) < 0.4
    # Every series with an org label, over every gauge: bounded whatever the number of orgs.
    assert sum(1 for (_, pairs) in samples if any(k == "org" for k, _ in pairs)) == 4 * (TOP + 1)


def check_a_big_chat_moves_its_org_to_the_top(server):
    http = logged_in(server)
    org = http.post("/orgs", json={"name": "Newcomer"}).json()["id"]
    usage = http.message(http.conversation(orgId=org), content="word " * 6000, model=PRICED)["usage"]
    assert usage["totalTokens"] > 10 * 505  # ten times the biggest of the 1,000
    samples = wait_until(lambda: (s := scrape(server.metrics_url)).value(
        "gateway_usage_month_tokens", org=org) == usage["totalTokens"] and s, timeout=10,
        what="the newcomer at the top")
    assert samples.value("gateway_usage_month_cost_usd", org=org) == pytest.approx(
        float(cost(usage["promptTokens"], usage["completionTokens"])), rel=1e-12)
    assert len(samples.series("gateway_usage_month_tokens")) == TOP + 1
    assert samples.value("gateway_usage_month_orgs") == ORGS + 1


def check_small_chats_move_other_and_the_budget_ratios(server):
    """An org's small chats (through the usage write path) move `other`, and its budget ratio names it."""
    http = logged_in(server)
    org = http.post("/orgs", json={"name": "Chatty"}).json()["id"]
    assert http.put(f"/orgs/{org}/budget", json={"monthlyTokens": 50, "monthlyCostUsd": "0.000011"}).status_code == 200
    before = scrape(server.metrics_url)
    conversation = http.conversation(orgId=org)
    usages = [http.message(conversation, model=PRICED)["usage"] for _ in range(2)]
    used = sum(u["totalTokens"] for u in usages)
    spent = sum(cost(u["promptTokens"], u["completionTokens"]) for u in usages)
    # Above the other orgs' ratios (below 0.4): named at the top of both limits.
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
