"""What each limit costs on the hot path: every check switched on and off, in alternated blocks, in one process.

    python -m bench.limits                # SQLite, then PostgreSQL at 127.0.0.1:5432 (a fresh database)
    python -m bench.limits --quick        # small sizes: a smoke test of the tooling

Through Flask's test client (no network, no gunicorn, METRICS_ENABLED=false, so a
check is a larger share than it would be behind a server) or by calling the
check directly. Each measurement alternates blocks "on" and "off" and reports
the medians of the blocks' means; the cost is their difference, the ratio is
"on" over the request the check guards (a baseline timed in the same process):

- revocation: `token_in_blocklist_loader` against one answering "not revoked"
  without a query, on GET /auth/me (which itself reads the user: one query).
- rate limit (`chat_user`), `memory://` and Redis: `limiter.enabled` toggled
  between blocks on POST /conversations/<missing>/messages, a chat refused with
  404 at its first query, so the route is cheap and the limiter a visible share.
  (The login limits guard a route dominated by the password hash: their cost is
  the same limiter call, twice, and invisible there.)
- open streams per user, memory and Redis: a slot taken and given back
  (app/admission/stream_cap.py), against an empty call.
- org budget: `enforce_budget` in one session for a conversation of an org with
  a budget (and this month's usage), of an org without one, and without an org.
- per-worker chat cap: a LocalSlots slot taken and given back, against an empty call.

Writes Markdown and JSON to bench/results/ (limits-*).
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from pathlib import Path

from app import create_app
from app.admission.rate_limits import limiter
from app.admission.slots import LocalSlots, RedisSlots
from app.config import Settings
from app.extensions import jwt
from app.migrate import upgrade

from ..common.databases import ScratchDatabase
from ..common.report import default_output, write_results
from .report import markdown
REDIS_URL = "redis://127.0.0.1:6379/15"
BASE_ENV = {"APP_ENV": "test", "LOG_LEVEL": "WARNING", "JWT_SECRET_KEY": "bench-secret-long-enough-for-hs256-signing",
            "PASSWORD_HASH_COST": "10", "METRICS_ENABLED": "false", "RATE_LIMITS_ENABLED": "false"}


def _us(seconds: float) -> float:
    return round(seconds * 1e6, 1)


def alternate(on: Callable[[], None], off: Callable[[], None], *, blocks: int, per_block: int,
              switch: Callable[[bool], None] = lambda _on: None) -> dict:
    """Blocks of `per_block` calls, "on" then "off", `blocks` times each: medians of the blocks' means, in µs."""
    def block(call) -> float:
        started = time.perf_counter()
        for _ in range(per_block):
            call()
        return (time.perf_counter() - started) / per_block

    timed: dict[bool, list[float]] = {True: [], False: []}
    try:
        for state in (True, False):  # warm up both paths: connections, caches, scripts loaded
            switch(state)
            block(on if state else off)
        for _ in range(blocks):
            for state in (True, False):
                switch(state)
                timed[state].append(block(on if state else off))
    finally:
        switch(True)
    on_s, off_s = statistics.median(timed[True]), statistics.median(timed[False])
    return {"calls": blocks * per_block * 2, "on_us": _us(on_s), "off_us": _us(off_s), "cost_us": _us(on_s - off_s),
            "spread_on_us": [_us(min(timed[True])), _us(max(timed[True]))],
            "spread_off_us": [_us(min(timed[False])), _us(max(timed[False]))]}


def _request(client, method: str, path: str, headers: dict, status: int, **kwargs) -> Callable[[], None]:
    def call() -> None:
        response = client.open(path, method=method, headers=headers, **kwargs)
        assert response.status_code == status, response.get_data()

    return call


def _app(database_url: str, **env):
    app = create_app({**BASE_ENV, "DATABASE_URL": database_url, **env})
    client = app.test_client()
    body = client.post("/auth/register", json={"email": f"{uuid.uuid4().hex[:8]}@example.com",
                                               "password": "bench password"}).get_json()
    return app, client, {"Authorization": f"Bearer {body['accessToken']}"}


def revocation(database_url: str, *, blocks: int, per_block: int) -> dict:
    app, client, headers = _app(database_url)
    real_check = jwt._token_in_blocklist_callback
    me = _request(client, "GET", "/auth/me", headers, 200)

    def switch(on: bool) -> None:
        jwt._token_in_blocklist_callback = real_check if on else (lambda _header, _payload: False)

    try:
        return alternate(me, me, blocks=blocks, per_block=per_block, switch=switch)
    finally:
        app.extensions["db_engine"].dispose()


def rate_limit(database_url: str, storage_uri: str, *, blocks: int, per_block: int) -> dict:
    app, client, headers = _app(database_url, RATE_LIMITS_ENABLED="true", RATE_LIMIT_STORAGE_URI=storage_uri,
                                       RATE_LIMIT_CHAT_USER="100000000/minute")
    missing = _request(client, "POST", f"/conversations/{uuid.uuid4()}/messages", headers, 404,
                       json={"content": "hello"})

    def switch(on: bool) -> None:
        limiter.enabled = on

    try:
        result = alternate(missing, missing, blocks=blocks, per_block=per_block, switch=switch)
        # The limiter really counted (and so ran) in the "on" blocks.
        assert client.open(f"/conversations/{uuid.uuid4()}/messages", method="POST", headers=headers,
                           json={"content": "hello"}).headers.get("X-RateLimit-Remaining") is not None
        return result
    finally:
        app.extensions["db_engine"].dispose()


def stream_slots(slots, *, blocks: int, per_block: int) -> dict:
    def take_and_give_back() -> None:
        release = slots.take("bench-user", 8)
        assert release is not None
        release()

    return alternate(take_and_give_back, lambda: None, blocks=blocks, per_block=per_block)


def chat_slots(*, blocks: int, per_block: int) -> dict:
    slots = LocalSlots()

    def acquire_and_release() -> None:
        release = slots.take("worker", 1000)
        assert release is not None
        release()

    return alternate(acquire_and_release, lambda: None, blocks=blocks, per_block=per_block)


def budget(database_url: str, *, blocks: int, per_block: int) -> dict:
    """enforce_budget for an org with a budget and this month's usage, and for one without, against no org."""
    from app.db import get_session
    from app.models import Org, OrgBudget, OrgUsageMonth, month_key, utcnow
    from app.usage.budgets import enforce_budget

    app = create_app({**BASE_ENV, "DATABASE_URL": database_url})
    try:
        with app.app_context():
            session = get_session()
            with_budget, without_budget = Org(name="budgeted"), Org(name="unbudgeted")
            session.add_all([with_budget, without_budget])
            session.flush()
            session.add_all([OrgBudget(org_id=with_budget.id, monthly_tokens=10**12),
                             OrgUsageMonth(org_id=with_budget.id, month=month_key(utcnow()), tokens=1234)])
            session.commit()
            no_org = lambda: enforce_budget(session=session, org_id=None)  # noqa: E731
            results = {
                "with_budget": alternate(lambda: enforce_budget(session=session, org_id=with_budget.id), no_org,
                                         blocks=blocks, per_block=per_block),
                "without_budget": alternate(lambda: enforce_budget(session=session, org_id=without_budget.id),
                                            no_org, blocks=blocks, per_block=per_block),
            }
            session.rollback()
            return results
    finally:
        app.extensions["db_engine"].dispose()


def _flush_redis(url: str) -> None:
    import redis

    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()


def measure_database(database_url: str, redis_url: str, *, blocks: int, per_block: int,
                     direct_per_block: int) -> dict:
    results = {"revocation": revocation(database_url, blocks=blocks, per_block=per_block),
               "rate_limit_memory": rate_limit(database_url, "memory://", blocks=blocks, per_block=per_block)}
    _flush_redis(redis_url)
    results["rate_limit_redis"] = rate_limit(database_url, redis_url, blocks=blocks, per_block=per_block)
    results.update({f"budget_{k}": v for k, v in
                    budget(database_url, blocks=blocks, per_block=direct_per_block).items()})
    return results


def measure_direct(redis_url: str, *, blocks: int, per_block: int) -> dict:
    _flush_redis(redis_url)
    redis_slots = RedisSlots(redis_url, 300)
    try:
        return {"stream_cap_memory": stream_slots(LocalSlots(), blocks=blocks, per_block=per_block * 10),
                "stream_cap_redis": stream_slots(redis_slots, blocks=blocks, per_block=per_block),
                "chat_cap": chat_slots(blocks=blocks, per_block=per_block * 10)}
    finally:
        redis_slots._client.close()


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(prog="python -m bench.limits", description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, a few seconds")
    parser.add_argument("--blocks", type=int, default=20, help="blocks of each kind, alternated")
    parser.add_argument("--per-block", type=int, default=200, help="requests per block")
    parser.add_argument("--direct-per-block", type=int, default=1000, help="direct calls per block")
    parser.add_argument("--redis-url", default=REDIS_URL, help="a Redis database to use; flushed first")
    parser.add_argument("--output", type=Path, help="the Markdown file (JSON beside it)")
    args = parser.parse_args(argv)
    blocks, per_block, direct = (3, 30, 100) if args.quick else (args.blocks, args.per_block, args.direct_per_block)
    results: dict = {}
    with tempfile.TemporaryDirectory() as directory:
        sqlite_url = f"sqlite:///{Path(directory) / 'bench.db'}"
        upgrade(sqlite_url)
        results["sqlite"] = measure_database(sqlite_url, args.redis_url, blocks=blocks, per_block=per_block,
                                             direct_per_block=direct)
    with ScratchDatabase(True, "bench_limits") as postgres:
        upgrade(Settings.from_env({"DATABASE_URL": postgres.url, "JWT_SECRET_KEY": "unused"}).database_url)
        results["postgresql"] = measure_database(postgres.url, args.redis_url, blocks=blocks, per_block=per_block,
                                                 direct_per_block=direct)
    results["none (in process)"] = measure_direct(args.redis_url, blocks=blocks, per_block=direct)
    text = markdown(results, blocks=blocks, per_block=per_block, direct_per_block=direct)
    print(text)
    suffix = "quick" if args.quick else "full"
    output = args.output or default_output("limits", suffix)
    write_results(output, text, results, "-")

